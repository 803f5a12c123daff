"""Integrations with the CMSs newsrooms run, each an optional Django app of its own:
`cms_plugin.contrib.wagtail` (pip install 'humanmade[wagtail]') and
`cms_plugin.contrib.djangocms` (pip install 'humanmade[djangocms]'). The core app never
imports them."""
