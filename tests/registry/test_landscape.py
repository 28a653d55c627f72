"""Landscape import and export against the real PyTorch landscape file and odd fixtures."""

import io
import textwrap

import pytest
import yaml
from django.core.management import CommandError, call_command

from registry.models import Category, Project

pytestmark = pytest.mark.django_db


def run(command, *args):
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def registry_state():
    return sorted(
        (
            p.slug,
            p.name,
            p.kind,
            p.status,
            str(p.category),
            p.description,
            p.homepage_url,
            p.logo,
            p.repo_owner,
            p.repo_name,
            p.accepted_on,
            p.flags,
            p.landscape_extra,
        )
        for p in Project.objects.select_related("category__parent")
    )


def test_real_file_imports_every_project_and_flags_the_odd_ones(real_landscape_path):
    summary = run("import_landscape", str(real_landscape_path))

    assert "created 143, updated 0, unchanged 0, skipped 45, flagged 6" in summary
    assert Project.objects.filter(kind="hosted").count() == 6
    ecosystem = Project.objects.filter(kind="ecosystem")
    assert ecosystem.count() == 137
    assert ecosystem.filter(status="active").count() == 69
    assert ecosystem.filter(status="retired").count() == 68
    assert "PyTorch Members: an organisation, not a project" in summary
    assert not Project.objects.filter(name__endswith="(member)").exists()

    pytorch = Project.objects.get(slug="pytorch")
    assert (pytorch.kind, pytorch.status) == ("hosted", "active")
    assert pytorch.accepted_on.isoformat() == "2022-09-07"
    assert str(pytorch.category) == "PyTorch Projects / Foundation"
    assert pytorch.repository == "pytorch/pytorch"
    assert Project.objects.get(slug="vllm").accepted_on.isoformat() == "2025-04-08"

    flagged = {p.name: p for p in Project.objects.exclude(flags=[])}
    assert set(flagged) == {"OpenMMLab", "VISSL", "joeynmt", "MONAI", "Substra", "Speedster"}
    for name in ["OpenMMLab", "joeynmt", "MONAI", "Substra"]:
        assert flagged[name].repository == ""
        assert "organisation page" in flagged[name].flags[0]["message"]
        assert f"flagged: {name}: " in summary
    assert flagged["VISSL"].repository == "facebookresearch/vissl"
    assert flagged["Speedster"].repository == "nebuly-ai/optimate"
    # Trailing slash and trailing spaces are normalised silently.
    assert Project.objects.get(slug="dgl").repository == "dmlc/dgl"
    assert Project.objects.get(slug="onnx").repository == "onnx/onnx"


def test_second_import_changes_nothing(imported_landscape, real_landscape_path):
    before = registry_state()
    summary = run("import_landscape", str(real_landscape_path))
    assert "created 0, updated 0, unchanged 143" in summary
    assert registry_state() == before
    assert Project.objects.count() == 143


def test_import_updates_changed_items(imported_landscape, real_landscape_path, tmp_path):
    document = yaml.safe_load(real_landscape_path.read_text())
    item = document["landscape"][0]["subcategories"][0]["items"][0]
    item["description"] = "Changed description."
    item["project"] = "archived"
    changed = tmp_path / "changed.yml"
    changed.write_text(yaml.safe_dump(document))

    summary = run("import_landscape", str(changed))

    assert "created 0, updated 1, unchanged 142" in summary
    project = Project.objects.get(name=item["name"])
    assert (project.description, project.status) == ("Changed description.", "retired")


def test_export_then_import_round_trips(imported_landscape, tmp_path):
    before = registry_state()
    exported = tmp_path / "export.yml"
    run("export_landscape", str(exported))
    document = yaml.safe_load(exported.read_text())
    items = [i for c in document["landscape"] for s in c["subcategories"] for i in s["items"]]
    assert len(items) == 143
    assert {"item": None, "name": "PyTorch"}.items() <= items[0].items() or any(
        i["name"] == "PyTorch" and i["project"] == "foundation" for i in items
    )

    Project.objects.all().delete()
    Category.objects.filter(parent__isnull=False).delete()
    Category.objects.all().delete()
    summary = run("import_landscape", str(exported))

    assert "created 143" in summary
    assert registry_state() == before


def write(tmp_path, text):
    path = tmp_path / "landscape.yml"
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("landscape: [\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a top-level 'landscape:' list"),
        ("landscape:\n  - category:\n    subcategories: []\n", "has no name"),
        (
            "landscape:\n  - name: A\n    subcategories:\n      - items: []\n",
            "subcategory with no name",
        ),
        ("landscape:\n  - name: A\n    subcategories: 3\n", "'subcategories' is not a list"),
    ],
)
def test_malformed_files_are_refused_with_a_message(tmp_path, text, message):
    with pytest.raises(CommandError, match=message):
        run("import_landscape", write(tmp_path, text))
    assert Project.objects.count() == 0


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run("import_landscape", str(tmp_path / "missing.yml"))


def test_odd_items_are_skipped_or_flagged_with_reasons(tmp_path):
    path = write(
        tmp_path,
        """
        landscape:
          - category:
            name: Training
            subcategories:
              - subcategory:
                name: General
                items:
                  - item:
                    description: no name here
                  - item:
                    name: Good
                    repo_url: https://github.com/good/good
                  - item:
                    name: good
                    repo_url: https://github.com/other/other
                  - item:
                    name: Same Repo
                    repo_url: https://github.com/good/good/
                  - item:
                    name: Look Alike
                    repo_url: https://github.com.evil.test/a/b
                  - "not a mapping"
        """,
    )
    summary = run("import_landscape", path)

    assert "created 3, updated 0, unchanged 0, skipped 3, flagged 2" in summary
    assert "item without a name" in summary
    assert "duplicate slug 'good', already used by 'Good'" in summary
    assert "not a mapping" in summary
    same = Project.objects.get(slug="same-repo")
    assert same.repository == "" and "already belongs to 'Good'" in same.flags[0]["message"]
    look_alike = Project.objects.get(slug="look-alike")
    assert look_alike.repository == "" and "github.com" in look_alike.flags[0]["message"]


def test_a_failed_import_keeps_what_was_stored(
    imported_landscape, real_landscape_path, tmp_path, monkeypatch
):
    before = registry_state()
    document = yaml.safe_load(real_landscape_path.read_text())
    for category in document["landscape"]:
        for subcategory in category["subcategories"]:
            for item in subcategory["items"]:
                item["description"] = "rewritten"
    path = tmp_path / "rewritten.yml"
    path.write_text(yaml.safe_dump(document))
    saves = {"n": 0}
    original_save = Project.save

    def save_then_crash(self, *args, **kwargs):
        saves["n"] += 1
        if saves["n"] == 50:
            raise RuntimeError("database went away")
        return original_save(self, *args, **kwargs)

    monkeypatch.setattr(Project, "save", save_then_crash)
    with pytest.raises(RuntimeError):
        run("import_landscape", str(path))

    assert saves["n"] == 50
    assert registry_state() == before
