"""The checking desk: `path("desk/", include("cms_plugin.desk.urls"))` in a site's URLs."""
