"""Pages of the reviews app: the applicant's portal, the TAC dashboard, a project fragment."""

from django.urls import path

from reviews import maintainer_views, views

app_name = "reviews"
urlpatterns = [
    path("", views.my_applications, name="mine"),
    path("apply/", views.application_new, name="apply"),
    path("applications/<int:pk>/", views.application_detail, name="application"),
    path("applications/<int:pk>/edit/", views.application_edit, name="edit"),
    path("applications/<int:pk>/submit/", views.application_submit, name="submit"),
    path("applications/<int:pk>/withdraw/", views.application_withdraw, name="withdraw"),
    path("applications/<int:pk>/resume/", views.application_resume, name="resume"),
    path("applications/<int:pk>/comment/", views.application_comment, name="comment"),
    path(
        "applications/<int:pk>/onboarding/<int:task_id>/",
        views.application_onboarding,
        name="application_onboarding",
    ),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/<int:pk>/", views.review_detail, name="review"),
    path("dashboard/<int:pk>/transition/", views.review_transition, name="transition"),
    path("dashboard/<int:pk>/assign/", views.review_assign, name="assign"),
    path("dashboard/<int:pk>/category/", views.review_category, name="category"),
    path("dashboard/<int:pk>/criteria/<int:number>/answer/", views.review_answer, name="answer"),
    path(
        "dashboard/<int:pk>/criteria/<int:number>/override/",
        views.review_override,
        name="override",
    ),
    path("dashboard/<int:pk>/comment/", views.review_comment, name="review_comment"),
    path("dashboard/<int:pk>/checks/", views.review_checks, name="checks"),
    path("dashboard/<int:pk>/vote/", views.review_vote, name="vote"),
    path("dashboard/<int:pk>/close-vote/", views.review_close_vote, name="close_vote"),
    path(
        "dashboard/<int:pk>/onboarding/<int:task_id>/",
        views.onboarding_toggle,
        name="onboarding",
    ),
    path("periodic/<int:pk>/", views.periodic_review, name="periodic_review"),
    path("fragments/projects/<slug:slug>/history/", views.project_history, name="project_history"),
    # Maintainers: "My projects" and the management of a listing (reviews/maintainer_views.py).
    path("my-projects/", maintainer_views.my_projects, name="my_projects"),
    path("my-projects/<slug:slug>/", maintainer_views.project_manage, name="project_manage"),
    *(
        path(
            f"my-projects/<slug:slug>/{action}/",
            maintainer_views.project_action,
            {"action": action},
            name=f"project_{action.replace('-', '_')}",
        )
        for action in maintainer_views.ACTIONS
    ),
    path(
        "my-projects/<slug:slug>/exemptions/<int:exemption_id>/withdraw/",
        maintainer_views.exemption_withdraw,
        name="project_exemption_withdraw",
    ),
    path(
        "my-projects/<slug:slug>/onboarding/<int:task_id>/",
        maintainer_views.onboarding_tick,
        name="project_onboarding",
    ),
    path(
        "my-projects/<slug:slug>/webhook-secret/",
        maintainer_views.webhook_secret_rotate,
        name="project_webhook_secret",
    ),
    path(
        "my-projects/<slug:slug>/category/confirm/",
        maintainer_views.category_confirm,
        name="project_category_confirm",
    ),
    path(
        "my-projects/<slug:slug>/changes/<int:change_id>/revert/",
        maintainer_views.change_revert,
        name="project_change_revert",
    ),
]
