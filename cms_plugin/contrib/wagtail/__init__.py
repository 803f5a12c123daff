"""humanmade inside Wagtail's admin: badges in the image library and chooser, the verdict on
the image's edit page, a "Needs review" menu for reviewers, and an optional warning before a
page with an unconfirmed likely-AI image is published. Add "cms_plugin.contrib.wagtail"
to INSTALLED_APPS before "wagtail.images" (its templates extend Wagtail's)."""
