"""humanmade in a django CMS site, where media live in django-filer: the verdict on the filer
image's admin page, and the review queue linking back to it. (In django CMS a "plugin" is a
content block on a page; this is not one: it is a Django app that checks the images editors
upload to filer.) Add "cms_plugin.contrib.djangocms" to INSTALLED_APPS after "filer"."""
