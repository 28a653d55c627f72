"""Pages of the compatibility runs, mounted at /runs/."""

from django.urls import path

from ci_runners import views

app_name = "ci_runners"
urlpatterns = [
    path("", views.matrix, name="matrix"),
    path("fleet/", views.fleet, name="fleet"),
    path("fleet/full-run/", views.night_run_full, name="night_run_full"),
    path("cells/<int:cell_id>/", views.cell_detail, name="cell"),
    path("cells/<int:cell_id>/log.txt", views.cell_log, name="cell_log"),
    path("projects/<slug:slug>/matrix/", views.project_matrix, name="project_matrix"),
    path("projects/<slug:slug>/run/", views.project_run_now, name="project_run_now"),
    path("projects/<slug:slug>/testing/", views.project_testing, name="project_testing"),
    path("projects/<slug:slug>/bisect/", views.project_bisect, name="project_bisect"),
    path("<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("deprecations/", views.deprecations, name="deprecations"),
    path(
        "projects/<slug:slug>/deprecations/",
        views.project_deprecations,
        name="project_deprecations",
    ),
    path("releases/", views.release_list, name="release_list"),
    path("releases/<str:version>/", views.release_report, name="release_report"),
    path("releases/<str:version>/approve/", views.release_approve, name="release_approve"),
]
