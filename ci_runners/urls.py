"""Pages of the compatibility runs, mounted at /runs/."""

from django.urls import path

from ci_runners import views

app_name = "ci_runners"
urlpatterns = [
    path("", views.matrix, name="matrix"),
    path("fleet/", views.fleet, name="fleet"),
    path("cells/<int:cell_id>/", views.cell_detail, name="cell"),
    path("cells/<int:cell_id>/log.txt", views.cell_log, name="cell_log"),
    path("projects/<slug:slug>/matrix/", views.project_matrix, name="project_matrix"),
    path("projects/<slug:slug>/run/", views.project_run_now, name="project_run_now"),
    path("projects/<slug:slug>/testing/", views.project_testing, name="project_testing"),
    path("<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
]
