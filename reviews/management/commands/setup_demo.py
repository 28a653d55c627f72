"""python manage.py setup_demo: local demo accounts (one per role) and the demo compat matrix.

Local only: refuses to run unless DEBUG is on, and prints the accounts it made.
"""

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from reviews.roles import REVIEWERS_GROUP, STAFF_GROUP, VOTING_GROUP

DEMO_ACCOUNTS = [
    # (username, groups, is_staff, is_superuser)
    ("admin", [STAFF_GROUP], True, True),
    ("reviewer", [REVIEWERS_GROUP], False, False),
    ("voter1", [VOTING_GROUP, REVIEWERS_GROUP], False, False),
    ("voter2", [VOTING_GROUP], False, False),
    ("voter3", [VOTING_GROUP], False, False),
    ("applicant", [], False, False),
]


class Command(BaseCommand):
    help = "Create local demo accounts and the demo compatibility projects (DEBUG only)."

    def add_arguments(self, parser):
        parser.add_argument("--no-compat", action="store_true", help="Skip the compat demo.")

    def handle(self, *args, no_compat: bool = False, **options):
        if not settings.DEBUG:
            raise CommandError("setup_demo makes accounts with known passwords: DEBUG only.")
        with transaction.atomic():
            for username, groups, is_staff, is_superuser in DEMO_ACCOUNTS:
                password = f"{username}-demo-pass"
                email = f"{username}@demo.localhost"
                user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
                user.email, user.is_staff, user.is_superuser = email, is_staff, is_superuser
                user.set_password(password)
                user.save()
                user.groups.set(Group.objects.filter(name__in=groups))
                EmailAddress.objects.update_or_create(
                    user=user, email=email, defaults={"verified": True, "primary": True}
                )
        if not no_compat:
            call_command("demo_compat", stdout=self.stdout, stderr=self.stderr)
        self.stdout.write("\nLocal demo accounts (sign in with the email or, in /admin, the name):")
        for username, groups, *_ in DEMO_ACCOUNTS:
            roles = ", ".join(groups) or "maintainer-applicant"
            self.stdout.write(f"  {username}@demo.localhost / {username}-demo-pass  ({roles})")
