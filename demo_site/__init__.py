"""The humanmade demo site: one small Django project that scores an uploaded image.

It is both the project package (settings, URLs) and an installed app (views, templates and
the `demo` management command). Everything runs embedded: SQLite, no broker, no services.
"""
