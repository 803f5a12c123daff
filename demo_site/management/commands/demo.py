"""`python manage.py demo`: migrate, create the demo admin, load the model, serve."""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from demo_site.engine import get_detector

ADMIN_USER_ENV = "HUMANMADE_DEMO_ADMIN_USER"
ADMIN_PASSWORD_ENV = "HUMANMADE_DEMO_ADMIN_PASSWORD"


class Command(BaseCommand):
    help = (
        "Run the humanmade demo site: apply migrations to the SQLite database, create a demo "
        f"admin from ${ADMIN_USER_ENV}/${ADMIN_PASSWORD_ENV} if set, load the model weights "
        "once, then start Django's development server (no auto-reload)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--addrport",
            default="127.0.0.1:8000",
            help="Address and port to serve on (default: 127.0.0.1:8000).",
        )
        parser.add_argument(
            "--no-serve",
            action="store_true",
            help="Prepare everything (database, admin, model) but do not start the server.",
        )

    def handle(self, *args, addrport: str, no_serve: bool, **options) -> None:
        verbosity = options["verbosity"]
        self.stdout.write(f"Database: {settings.DATABASES['default']['NAME']}")
        call_command(
            "migrate",
            interactive=False,
            verbosity=max(0, verbosity - 1),
            stdout=self.stdout,
            stderr=self.stderr,
        )
        self.stdout.write("Database migrations applied.")
        self._ensure_admin()
        self._warm_detector()
        base = f"http://{addrport}"
        self.stdout.write(
            f"Demo page: {base}/  ·  review queue: {base}/admin/cms_plugin/detection/  ·  "
            f"API: {base}/api/detections/ (schema: {base}/api/schema/)\n"
            "Newsroom photos added in the admin are scored in-process after each save; "
            "borderline ones wait in the review queue."
        )
        if no_serve:
            self.stdout.write("--no-serve given: not starting the web server.")
            return
        call_command("runserver", addrport, use_reloader=False)

    def _ensure_admin(self) -> None:
        username = os.environ.get(ADMIN_USER_ENV, "").strip()
        password = os.environ.get(ADMIN_PASSWORD_ENV, "")
        if not (username and password):
            if username or password:
                self.stderr.write(
                    f"Only one of {ADMIN_USER_ENV} and {ADMIN_PASSWORD_ENV} is set; "
                    "both are needed to create the demo admin."
                )
            user_model = get_user_model()
            admins = list(
                user_model._default_manager.filter(is_superuser=True, is_active=True)
                .order_by(user_model.USERNAME_FIELD)
                .values_list(user_model.USERNAME_FIELD, flat=True)[:5]
            )
            if admins:
                self.stdout.write(
                    "Admin account(s) already here: "
                    + ", ".join(f"'{name}'" for name in admins)
                    + "; log in at /admin/ with one of them."
                )
                return
            self.stdout.write(
                "No demo admin created. To use /admin/, create one with\n"
                "    python manage.py createsuperuser\n"
                f"or set {ADMIN_USER_ENV} and {ADMIN_PASSWORD_ENV} and run this command again."
            )
            return
        user_model = get_user_model()
        manager = user_model._default_manager
        if manager.filter(**{user_model.USERNAME_FIELD: username}).exists():
            self.stdout.write(f"Demo admin '{username}' already exists; left unchanged.")
            return
        manager.create_superuser(
            **{user_model.USERNAME_FIELD: username}, email="", password=password
        )
        self.stdout.write(self.style.SUCCESS(f"Created demo admin '{username}'."))

    def _warm_detector(self) -> None:
        from detector_core.errors import WeightsError

        detector = get_detector()
        self.stdout.write(f"Loading model weights from {detector.weights_path} ...")
        try:
            version = detector.model_version
        except WeightsError as exc:
            raise CommandError(
                f"Cannot load the model weights: {exc}\n"
                "Point HUMANMADE_WEIGHTS (or HUMANMADE['WEIGHTS'] in demo_site/settings.py) at "
                "a released .safetensors file with its model card beside it."
            ) from exc
        self.stdout.write(self.style.SUCCESS(f"Model loaded: version {version}."))
