"""Pages of the reviews app: the applicant's portal, the TAC dashboard, a project fragment."""

from django.urls import path

from reviews import views

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
]
