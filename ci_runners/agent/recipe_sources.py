"""Readers of the files a test recipe is discovered from (`recipe.py` puts them together).

Every reader only parses: setup.py, noxfile.py and runner scripts with `ast`, workflows with a
YAML loader that refuses aliases, `run:` lines with shlex; nothing of the project is executed.
Reads are capped (`MAX_FILE_BYTES`, `MAX_WORKFLOWS`), paths that leave the checkout (`..`,
absolute paths, symlinks out) are refused, and a file that does not parse is skipped with a
provenance note instead of an error.
"""

from __future__ import annotations

import ast
import configparser
import itertools
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1024 * 1024
MAX_WORKFLOWS = 200
# Cap the YAML a checkout makes discovery read (each file, and all workflows together).
MAX_WORKFLOW_BYTES = 512 * 1024
MAX_WORKFLOW_BYTES_TOTAL = 2 * 1024 * 1024
MAX_INCLUDE_DEPTH = 5
TEST_NAMES = ("test", "tests", "testing", "dev")
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[([^\]]*)\])?")
SHELL_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;", "|&"}


def provenance(part: str, file: str, line: int | None, detail: str) -> dict[str, Any]:
    """One provenance entry: which part of the recipe came from where (or a note)."""
    return {"part": part, "file": file, "line": line, "detail": detail}


def string_list(value: Any) -> list[str]:
    """The string items of a config value that should be a list of strings (else none)."""
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def line_of(text: str, pattern: str, *, after: int = 0) -> int | None:
    """1-based number of the first line at or after line `after` matching regex `pattern`."""
    compiled = re.compile(pattern)
    for number, line in enumerate(text.splitlines(), start=1):
        if number >= after and compiled.search(line):
            return number
    return None


class CheckoutFiles:
    """Capped, contained reads of a checkout's files; what was skipped becomes a note."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.notes: list[dict[str, Any]] = []
        self._texts: dict[str, str | None] = {}

    def note(self, file: str, detail: str, line: int | None = None) -> None:
        self.notes.append(provenance("note", file, line, detail))

    def path(self, relative: str) -> Path | None:
        """The path inside the checkout, or None if it leaves it (the refusal is noted)."""
        if not relative or "\x00" in relative or Path(relative).is_absolute():
            self.note(repr(relative)[1:-1], "refused: absolute or empty path")
            return None
        try:
            candidate = (self.root / relative).resolve()
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a name too long
            self.note(relative, "refused: path does not resolve")
            return None
        if candidate != self.root and self.root not in candidate.parents:
            self.note(relative, "refused: path escapes the checkout")
            return None
        return candidate

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def is_dir(self, relative: str) -> bool:
        path = self.path(relative)
        try:
            return path is not None and path.is_dir()
        except OSError:  # e.g. a name too long
            return False

    def is_file(self, relative: str) -> bool:
        path = self.path(relative)
        try:
            return path is not None and path.is_file()
        except OSError:
            return False

    def text(self, relative: str) -> str | None:
        """The file's text, or None when missing, outside, too big or not text (noted)."""
        if relative not in self._texts:
            self._texts[relative] = self._read(relative)
        return self._texts[relative]

    def _read(self, relative: str) -> str | None:
        path = self.path(relative)
        if path is None or not self.is_file(relative):
            return None
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            self.note(relative, f"skipped: unreadable ({exc.strerror})")
            return None
        if len(data) > MAX_FILE_BYTES:
            self.note(relative, f"skipped: larger than {MAX_FILE_BYTES} bytes")
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self.note(relative, "skipped: not UTF-8 text")
            return None


# --- install evidence --------------------------------------------------------------------------


@dataclass(kw_only=True)
class Install:
    """What one source says to install for the tests: the project's extras, dependency groups
    and further requirements, with where each came from."""

    source: str
    extras: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    provenance: list[dict[str, Any]] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.extras or self.groups or self.requirements)

    def names_extras_or_groups(self) -> bool:
        return bool(self.extras or self.groups)

    def add_extra(self, extra: str, *, file: str, line: int | None, detail: str) -> None:
        if extra and extra not in self.extras:
            self.extras.append(extra)
            self.provenance.append(provenance("extras", file, line, detail))

    def add_requirement(self, requirement: str, *, file: str, line: int | None) -> None:
        if requirement not in self.requirements:
            self.requirements.append(requirement)
            self.provenance.append(provenance("requirements", file, line, requirement))


@dataclass(frozen=True, kw_only=True)
class Project:
    """What discovery needs to know of the project itself."""

    name: str | None
    optional: dict[str, list[str]]
    groups: dict[str, Any]
    pyproject: dict[str, Any]
    pyproject_text: str


def read_pyproject(files: CheckoutFiles) -> Project:
    text = files.text("pyproject.toml") or ""
    data: dict[str, Any] = {}
    if text:
        try:
            data = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, RecursionError) as exc:
            files.note("pyproject.toml", f"skipped: not valid TOML ({str(exc)[:200]})")
    project: dict[str, Any] = data["project"] if isinstance(data.get("project"), dict) else {}
    optional = project.get("optional-dependencies")
    groups = data.get("dependency-groups")
    name = project.get("name")
    return Project(
        name=name if isinstance(name, str) else None,
        optional={str(k): string_list(v) for k, v in optional.items()}
        if isinstance(optional, dict)
        else {},
        groups=groups if isinstance(groups, dict) else {},
        pyproject=data,
        pyproject_text=text,
    )


def add_entry(
    install: Install, entry: str, *, project: Project, files: CheckoutFiles, file: str, line: int
) -> None:
    """One requirement as a project wrote it: the project itself (its extras are kept),
    torch (the one under test replaces it) and local paths are dropped with a note."""
    entry = entry.strip()
    if not entry:
        return
    own = normalize(project.name) if project.name else None
    if entry == "." or entry.startswith((".[", "./[")) or entry in ("./", ".\\"):
        extras = re.search(r"\[([^\]]*)\]", entry)
        for extra in _split_extras(extras.group(1) if extras else ""):
            install.add_extra(extra, file=file, line=line, detail=entry)
        install.provenance.append(provenance("note", file, line, f"dropped {entry}: the project"))
        return
    if entry.startswith(("/", "./", "../", "file:")) or entry.endswith((".whl", ".tar.gz", ".zip")):
        install.provenance.append(provenance("note", file, line, f"dropped {entry}: local path"))
        return
    match = NAME.match(entry)
    if match is None:
        install.provenance.append(provenance("note", file, line, f"dropped {entry}: not PEP 508"))
        return
    name = normalize(match.group(1))
    if name == own:
        for extra in _split_extras(match.group(3) or ""):
            install.add_extra(extra, file=file, line=line, detail=entry)
        install.provenance.append(provenance("note", file, line, f"dropped {entry}: the project"))
    elif name == "torch":
        detail = f"dropped {entry}: the torch under test replaces it"
        install.provenance.append(provenance("note", file, line, detail))
    else:
        install.add_requirement(entry, file=file, line=line)


def _split_extras(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def flatten_group(
    groups: dict[str, Any], name: str, *, seen: tuple[str, ...] = ()
) -> list[str] | None:
    """A PEP 735 group's requirements with `include-group`s resolved; None when the group
    is missing, malformed or includes itself."""
    wanted = normalize(name)
    table = {normalize(key): value for key, value in groups.items()}
    if wanted in seen or not isinstance(table.get(wanted), list):
        return None
    flat: list[str] = []
    for item in table[wanted]:
        if isinstance(item, str):
            flat.append(item)
        elif isinstance(item, dict) and isinstance(item.get("include-group"), str):
            included = flatten_group(groups, item["include-group"], seen=(*seen, wanted))
            if included is None:
                return None
            flat.extend(included)
        else:
            return None
    return flat


def group_line(project: Project, name: str) -> int | None:
    start = line_of(project.pyproject_text, r"^\s*\[dependency-groups\]") or 0
    return line_of(project.pyproject_text, rf"^\s*\"?{re.escape(name)}\"?\s*=", after=start)


def extra_line(project: Project, name: str) -> int | None:
    start = line_of(project.pyproject_text, r"^\s*\[project\.optional-dependencies\]") or 0
    return line_of(project.pyproject_text, rf"^\s*\"?{re.escape(name)}\"?\s*=", after=start)


def extras_closure(project: Project, extras: list[str]) -> list[str]:
    """The extras and every extra of the project itself they name (`test = ["pkg[full]"]`)."""
    own = normalize(project.name) if project.name else None
    found = list(extras)
    for extra in found:
        for requirement in project.optional.get(extra, []):
            match = NAME.match(str(requirement))
            if match and normalize(match.group(1)) == own:
                found += [e for e in _split_extras(match.group(3) or "") if e not in found]
    return found


# --- requirement files -------------------------------------------------------------------------


def read_requirement_file(
    install: Install, relative: str, *, project: Project, files: CheckoutFiles, depth: int = 0
) -> None:
    """Requirements of a pip requirements file; `-r` includes inside the checkout followed."""
    if depth > MAX_INCLUDE_DEPTH:
        files.note(relative, "skipped: -r includes nested too deep")
        return
    text = files.text(relative)
    if text is None:
        return
    base = Path(relative).parent
    for number, line in _logical_lines(text):
        tokens = line.split()
        if tokens[0] in ("-r", "--requirement") and len(tokens) > 1:
            included = files.path((base / tokens[1]).as_posix())
            if included is not None:
                nested = files.relative(included)
                read_requirement_file(
                    install, nested, project=project, files=files, depth=depth + 1
                )
        elif tokens[0] in ("-e", "--editable") and len(tokens) > 1:
            add_entry(install, tokens[1], project=project, files=files, file=relative, line=number)
        elif tokens[0].startswith("-"):
            install.provenance.append(provenance("note", relative, number, f"dropped {line}"))
        else:
            add_entry(install, line, project=project, files=files, file=relative, line=number)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            lines.append((start, line))
    return lines


# --- ini files (setup.cfg, tox.ini, pytest.ini) ------------------------------------------------


def read_ini(files: CheckoutFiles, relative: str, text: str | None = None) -> Any:
    """A parsed ini file (no interpolation), or None (missing, or skipped with a note)."""
    text = files.text(relative) if text is None else text
    if text is None:
        return None
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read_string(text, source=relative)
    except configparser.Error as exc:
        files.note(relative, f"skipped: not a valid ini file ({type(exc).__name__})")
        return None
    return parser


def ini_line(text: str, section: str, key: str | None = None) -> int | None:
    start = line_of(text, rf"^\s*\[{re.escape(section)}\]\s*$")
    if start is None or key is None:
        return start
    return line_of(text, rf"^\s*{re.escape(key)}\s*[=:]", after=start) or start


def ini_list(value: str) -> list[str]:
    """A multi-line (or comma-separated) ini value as its items."""
    items = []
    for line in value.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            items.append(line)
    return items


def ini_env(value: str) -> dict[str, str]:
    env = {}
    for line in ini_list(value):
        key, sep, item = line.partition("=")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            env[key.strip()] = item.strip()
    return env


# --- python files read with ast ----------------------------------------------------------------


def parse_python(files: CheckoutFiles, relative: str) -> ast.Module | None:
    text = files.text(relative)
    if text is None:
        return None
    try:
        return ast.parse(text, filename=relative)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        files.note(relative, f"skipped: not valid Python ({type(exc).__name__})")
        return None


def literal(node: ast.AST | None, names: dict[str, ast.AST]) -> Any:
    """A node's literal value (a module-level name bound to a literal is followed once)."""
    if isinstance(node, ast.Name) and node.id in names:
        node = names[node.id]
    try:
        return ast.literal_eval(node) if node is not None else None
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def module_names(tree: ast.Module) -> dict[str, ast.AST]:
    names: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                names[target.id] = node.value
    return names


def call_name(node: ast.Call) -> str:
    """`a.b.c(...)` -> "a.b.c"."""
    return call_name_of(node.func)


@dataclass(kw_only=True)
class ScriptFacts:
    """What a runner script or module does, read with ast: env vars it sets and the argument
    lists of its `pytest.main` / unittest discovery calls."""

    env: dict[str, str] = field(default_factory=dict)
    env_lines: dict[str, int] = field(default_factory=dict)
    pytest_args: list[str] | None = None
    pytest_line: int | None = None
    unittest_start: str | None = None


def read_script(files: CheckoutFiles, relative: str) -> ScriptFacts | None:
    tree = parse_python(files, relative)
    if tree is None:
        return None
    names = module_names(tree)
    facts = ScriptFacts()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            _env_assignment(node, names, facts)
        elif isinstance(node, ast.Call):
            _script_call(node, names, facts)
    return facts


def _env_assignment(node: ast.Assign, names: dict[str, ast.AST], facts: ScriptFacts) -> None:
    for target in node.targets:
        if (
            isinstance(target, ast.Subscript)
            and call_name_of(target.value) in ("os.environ", "environ")
            and isinstance(key := literal(target.slice, names), str)
            and isinstance(value := literal(node.value, names), str)
        ):
            facts.env[key] = value
            facts.env_lines[key] = node.lineno


def call_name_of(node: ast.AST) -> str:
    """`a.b.c` -> "a.b.c"."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _script_call(node: ast.Call, names: dict[str, ast.AST], facts: ScriptFacts) -> None:
    name = call_name(node)
    first = literal(node.args[0], names) if node.args else None
    if name in ("os.environ.setdefault", "environ.setdefault", "os.putenv") and node.args:
        value = literal(node.args[1], names) if len(node.args) > 1 else None
        if isinstance(first, str) and isinstance(value, str):
            facts.env.setdefault(first, value)
            facts.env_lines.setdefault(first, node.lineno)
    elif name in ("os.environ.update", "environ.update") and isinstance(first, dict):
        for key, value in first.items():
            if isinstance(key, str) and isinstance(value, str):
                facts.env[key] = value
                facts.env_lines[key] = node.lineno
    elif name == "pytest.main":
        facts.pytest_args = _literal_strings(node.args[0], names) if node.args else []
        facts.pytest_line = node.lineno
    elif name.endswith("discover") and isinstance(first, str):
        facts.unittest_start = first


def _literal_strings(node: ast.AST, names: dict[str, ast.AST]) -> list[str]:
    """The string items of a list literal (computed items, e.g. a path from __file__, are
    left out)."""
    if isinstance(node, ast.Name) and node.id in names:
        node = names[node.id]
    if not isinstance(node, ast.List | ast.Tuple):
        return []
    values = [literal(item, names) for item in node.elts]
    return [value for value in values if isinstance(value, str)]


# --- workflows ---------------------------------------------------------------------------------


class NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses YAML aliases: a billion-laughs file fails at its first
    alias instead of expanding (workflows have no use for them)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are refused", event.start_mark
            )
        return super().compose_node(parent, index)


MAX_YAML_DEPTH = 64


def _refused(problem: str, mark: Any) -> yaml.YAMLError:
    return yaml.composer.ComposerError(None, None, problem, mark)


def load_workflow_yaml(text: str) -> Any:
    """A workflow's data, refusing aliases (YAML bombs) and deep nesting: libyaml's events are
    scanned first (fast, nothing built), then the document is loaded with the C safe loader;
    without libyaml, the pure-Python `NoAliasLoader` refuses aliases as it composes."""
    if not getattr(yaml, "__with_libyaml__", False):
        return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a safe loader
    depth = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise _refused("YAML aliases are refused", event.start_mark)
        if isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise _refused("YAML nested too deep", event.start_mark)
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            depth -= 1
    return yaml.load(text, Loader=yaml.CSafeLoader)  # noqa: S506 - libyaml's safe loader


@dataclass(kw_only=True)
class Step:
    file: str
    job: str
    run: str
    line: int | None
    env: dict[str, tuple[str, str, int | None]]  # name -> (value, file, line)
    cwd: str
    runs_on: str


def read_workflows(files: CheckoutFiles) -> list[list[Step]]:
    """Each workflow job's `run:` steps, in order, with their env and working directory."""
    folder = files.path(".github/workflows")
    if folder is None or not folder.is_dir():
        return []
    listed = itertools.islice(folder.iterdir(), MAX_WORKFLOWS * 50)
    paths = sorted(p for p in listed if p.suffix in (".yml", ".yaml"))
    if len(paths) > MAX_WORKFLOWS:
        files.note(".github/workflows", f"only the first {MAX_WORKFLOWS} workflow files read")
    jobs, budget = [], MAX_WORKFLOW_BYTES_TOTAL
    for path in paths[:MAX_WORKFLOWS]:
        relative = f".github/workflows/{path.name}"
        text = files.text(relative)
        if text is None:
            continue
        if len(text) > MAX_WORKFLOW_BYTES or len(text) > budget:
            files.note(relative, "skipped: workflow too large to read")
            continue
        budget -= len(text)
        try:
            data = load_workflow_yaml(text)
        except yaml.YAMLError as exc:
            files.note(relative, f"skipped: not valid YAML ({str(exc).splitlines()[0]})")
            continue
        except RecursionError:
            files.note(relative, "skipped: YAML nested too deep")
            continue
        jobs += _workflow_jobs(data, relative=relative, text=text)
    return jobs


class WorkflowLines:
    """Line numbers in one workflow's text, found in linear time: steps are looked up in
    order from a cursor, env keys from an index of each `key:` line's first occurrence."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position, self.line = 0, 1
        self._keys: dict[str, int] | None = None

    def next_line_of(self, snippet: str) -> int | None:
        found = self.text.find(snippet, self.position) if snippet else -1
        if found < 0:
            return None
        self.line += self.text.count("\n", self.position, found)
        self.position = found
        return self.line

    def key_line(self, key: str) -> int | None:
        if self._keys is None:
            self._keys = {}
            for number, line in enumerate(self.text.splitlines(), start=1):
                match = re.match(r"\s*([\w.-]+)\s*:", line)
                if match:
                    self._keys.setdefault(match.group(1), number)
        return self._keys.get(key)


def _env_of(
    value: Any, *, file: str, lines: WorkflowLines
) -> dict[str, tuple[str, str, int | None]]:
    if not isinstance(value, dict):
        return {}
    env = {}
    for key, item in value.items():
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, int | float):
            item = str(item)
        if isinstance(key, str) and isinstance(item, str) and "${{" not in item:
            env[key] = (item, file, lines.key_line(key))
    return env


def _workflow_jobs(data: Any, *, relative: str, text: str) -> list[list[Step]]:
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        return []
    lines = WorkflowLines(text)
    workflow_env = _env_of(data.get("env"), file=relative, lines=lines)
    result = []
    for job_id, job in data["jobs"].items():
        if not isinstance(job, dict) or not isinstance(job.get("steps"), list):
            continue
        env = {**workflow_env, **_env_of(job.get("env"), file=relative, lines=lines)}
        defaults: dict[str, Any] = job["defaults"] if isinstance(job.get("defaults"), dict) else {}
        run_defaults: dict[str, Any] = (
            defaults["run"] if isinstance(defaults.get("run"), dict) else {}
        )
        job_cwd = run_defaults.get("working-directory")
        steps = []
        for step in job["steps"]:
            if not isinstance(step, dict) or not isinstance(step.get("run"), str):
                continue
            cwd = step.get("working-directory", job_cwd)
            first = next((ln.strip() for ln in step["run"].splitlines() if ln.strip()), "")
            steps.append(
                Step(
                    file=relative,
                    job=str(job_id),
                    run=step["run"],
                    line=lines.next_line_of(first),
                    env={**env, **_env_of(step.get("env"), file=relative, lines=lines)},
                    cwd=cwd if isinstance(cwd, str) and "${{" not in cwd else ".",
                    runs_on=str(job.get("runs-on", "")),
                )
            )
        result.append(steps)
    return result


def shell_commands(script: str) -> list[tuple[int, list[str]]]:
    """The simple commands of a shell script, each with the 0-based line it starts on, split
    with shlex at `;`, `&&`, `||`, pipes and subshell parentheses; words with `$` or
    backquotes (unknowable here) are left out. Nothing is run."""
    commands: list[tuple[int, list[str]]] = []
    for offset, line in _joined_lines(script):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:
            continue  # unbalanced quotes: not a command we can read
        current: list[str] = []
        for token in [*tokens, ";"]:
            if token in SHELL_SEPARATORS or set(token) <= set(";&|()<>"):
                if current:
                    commands.append((offset, current))
                current = []
            elif "$" not in token and "`" not in token:
                current.append(token)
    return commands


def _joined_lines(script: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, each with its first line's offset."""
    joined: list[tuple[int, str]] = []
    pending, start = "", 0
    for offset, line in enumerate(script.splitlines()):
        if not pending:
            start = offset
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append((start, pending + line))
        pending = ""
    if pending:
        joined.append((start, pending))
    return joined


# --- commands (workflow run: lines, tox commands, nox sessions, hatch scripts) ---------------

PYTHONS = re.compile(r"^(python|python3|python3\.\d+|py|pypy3?)$")
WRAPPERS = {"sudo", "time", "nice", "exec", "command"}
PYTHON_VALUE_OPTIONS = {"-X", "-W"}
UV_RUN_VALUE_OPTIONS = {
    "--python", "-p", "--with", "--with-requirements", "--extra", "--group", "--package",
    "--env-file", "--directory", "--project", "--index", "--index-url", "--extra-index-url",
    "--find-links", "-f", "--only-group", "--no-group", "--no-extra",
}  # fmt: skip


@dataclass(kw_only=True)
class Command:
    """A test-running command: `kind` is pytest, unittest, module (`python -m pkg.mod`) or
    script (`python run_tests.py`); `args` what follows it; `target` the module or script."""

    kind: str
    args: list[str]
    target: str = ""
    env: dict[str, str] = field(default_factory=dict)
    extras: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    # `uv run` syncs the project's default group (`dev`) unless told not to.
    uv_default_groups: bool = False


def test_command(tokens: list[str], files: CheckoutFiles) -> Command | None:
    """The command, if `tokens` run tests; wrappers (`uv run`, `coverage run`, `xvfb-run`,
    inline env assignments) are seen through."""
    command = Command(kind="", args=[])
    words = _strip_prefixes(list(tokens), command)
    if not words:
        return None
    head = Path(words[0]).name
    if head in ("pytest", "py.test"):
        command.kind, command.args = "pytest", words[1:]
        return command
    if head == "coverage" and words[1:2] == ["run"]:
        words = ["python", *[w for w in words[2:] if not w.startswith("--")]]
        head = "python"
    if not PYTHONS.match(head):
        return None
    return _python_command(words[1:], command, files)


def _strip_prefixes(words: list[str], command: Command) -> list[str]:
    while words:
        word = words[0]
        assignment = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", word)
        if assignment:
            command.env[assignment.group(1)] = assignment.group(2)
            words = words[1:]
        elif word in WRAPPERS or word == "env":
            words = words[1:]
        elif word == "xvfb-run":
            words = words[1:]
            while words and words[0].startswith("-"):
                words = words[1:]
        elif word == "timeout" and len(words) > 1:
            words = words[2:]
        elif word == "uv" and words[1:2] == ["run"]:
            words = _uv_run(words[2:], command)
        elif word in ("hatch", "pdm", "poetry") and words[1:2] == ["run"]:
            words = words[2:]
        else:
            break
    return words


def _uv_run(words: list[str], command: Command) -> list[str]:
    command.uv_default_groups = not {"--no-dev", "--no-default-groups", "--no-sync"} & set(words)
    while words and words[0].startswith("-"):
        option, _, inline = words[0].partition("=")
        takes_value = option in UV_RUN_VALUE_OPTIONS and not inline
        value = inline or (words[1] if takes_value and len(words) > 1 else "")
        if option == "--extra":
            command.extras.append(value)
        elif option == "--group":
            command.groups.append(value)
        elif option == "--with":
            command.requirements += [v for v in value.split(",") if v]
        words = words[2:] if takes_value else words[1:]
    return words


def _python_command(words: list[str], command: Command, files: CheckoutFiles) -> Command | None:
    while words and words[0].startswith("-") and words[0] != "-m":
        words = words[2:] if words[0] in PYTHON_VALUE_OPTIONS else words[1:]
    if len(words) >= 2 and words[0] == "-m":
        module, rest = words[1], words[2:]
        if module in ("pytest", "py.test"):
            command.kind, command.args = "pytest", rest
        elif module == "unittest":
            command.kind, command.args = "unittest", rest
        elif module_file(module, files) is not None:
            command.kind, command.args, command.target = "module", rest, module
        else:
            return None
        return command
    if words and words[0].endswith(".py") and files.is_file(words[0]):
        script = read_script(files, words[0])
        if script is not None and (script.pytest_args is not None or script.unittest_start):
            command.kind, command.args, command.target = "script", words[1:], words[0]
            return command
    return None


def module_file(module: str, files: CheckoutFiles) -> str | None:
    """The checkout file of a dotted module name (flat or src layout), if it calls pytest."""
    if not re.fullmatch(r"[A-Za-z_][\w.]*", module):
        return None
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"src/{base}.py", f"{base}/__main__.py"):
        if files.is_file(candidate):
            script = read_script(files, candidate)
            if script is not None and (script.pytest_args is not None or script.unittest_start):
                return candidate
    return None


# pip / uv options taking a value that is not a requirement: dropped with a note.
PIP_VALUE_OPTIONS = {
    "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--python", "-t",
    "--target", "--prefix", "--root", "--platform", "--python-version", "--only-binary",
    "--no-binary", "--upgrade-strategy", "--index-strategy", "-p", "--torch-backend",
    "--cache-dir", "--progress-bar", "--src", "--log", "--timeout", "--retries",
    "--trusted-host", "--proxy", "--cert", "--client-cert", "--exists-action",
    "--global-option", "--config-settings", "-C", "--hash", "--resolution", "--prerelease",
    "--python-platform", "--exclude-newer", "--link-mode", "--override", "--index",
    "--reinstall-package", "--upgrade-package", "-P", "--no-binary-package", "--only-group",
    "--no-group", "--no-extra", "--package", "--directory", "--project",
}  # fmt: skip


def pip_install(
    install: Install,
    words: list[str],
    *,
    project: Project,
    files: CheckoutFiles,
    file: str,
    line: int,
) -> bool:
    """Requirements, extras and groups of a `pip install` / `uv pip install` / `uv sync` /
    `uv add` command; False when `words` is none of those."""
    args = _pip_install_args(words)
    if args is None:
        return False
    index = 0
    while index < len(args):
        word = args[index]
        if re.fullmatch(r"-[rec][^-=].*", word):  # "-rrequirements.txt"
            word = f"{word[:2]}={word[2:]}"
        option, _, inline = word.partition("=")
        value = inline or (args[index + 1] if index + 1 < len(args) else "")
        step = 1 if inline or not option.startswith("-") else 2
        if option == "--all-extras":
            step = 1
            for extra in project.optional:
                install.add_extra(extra, file=file, line=line, detail=" ".join(words))
        elif option in ("-r", "--requirement", "--requirements"):
            target = files.path(
                (Path(file).parent / value).as_posix() if file.endswith(".txt") else value
            )
            if target is not None:
                read_requirement_file(install, files.relative(target), project=project, files=files)
        elif option in ("-e", "--editable"):
            add_entry(install, value, project=project, files=files, file=file, line=line)
        elif option == "--extra":
            install.add_extra(value, file=file, line=line, detail=" ".join(words))
        elif option == "--group":
            value = value.rpartition(":")[2]  # pip's "--group pyproject.toml:test"
            if value == "dev" and words[:2] == ["uv", "sync"] and value not in project.groups:
                pass  # uv's default group, which this project does not have
            elif value not in install.groups:
                install.groups.append(value)
                install.provenance.append(provenance("groups", file, line, " ".join(words)))
        elif option in ("-c", "--constraint") or option in PIP_VALUE_OPTIONS:
            install.provenance.append(provenance("note", file, line, f"dropped {word} {value}"))
        elif word.startswith("-"):
            step = 1
        else:
            add_entry(install, word, project=project, files=files, file=file, line=line)
        index += step
    return True


def _pip_install_args(words: list[str]) -> list[str] | None:
    while words and (words[0] in WRAPPERS or re.fullmatch(r"\w+=.*", words[0])):
        words = words[1:]
    if words[:1] and PYTHONS.match(Path(words[0]).name) and words[1:3] == ["-m", "pip"]:
        words = ["pip", *words[3:]]
    if words[:2] == ["uv", "pip"]:
        words = words[1:]
    if words[:1] in (["pip"], ["pip3"]) and words[1:2] == ["install"]:
        return words[2:]
    if words[:2] == ["uv", "sync"]:
        no_default = {"--no-dev", "--no-default-groups"} & set(words)
        return words[2:] if no_default else [*words[2:], "--group", "dev"]
    return None


# --- pytest options ----------------------------------------------------------------------------

PYTEST_VALUE_OPTIONS = {
    "-m", "-k", "-p", "-c", "-o", "-W", "-n", "-r", "--numprocesses", "--maxfail",
    "--durations", "--timeout", "--rootdir", "--confcutdir", "--basetemp", "--ignore",
    "--ignore-glob", "--deselect", "--junitxml", "--junit-xml", "--junit-prefix",
    "--cov-report", "--cov-config", "--cov-fail-under", "--tb", "--log-level",
    "--log-cli-level", "--import-mode", "--dist", "--html", "--capture", "--color",
    "--override-ini", "--reruns", "--random-order-seed",
}  # fmt: skip
# Options the runner sets itself (reports) or whose plugin may be missing: dropped with a note.
PYTEST_DROPPED = {
    "--cov", "--cov-report", "--cov-config", "--cov-fail-under", "--cov-append",
    "--cov-branch", "--no-cov", "--junitxml", "--junit-xml", "--junit-prefix", "--html",
    "--self-contained-html", "-n", "--numprocesses", "--dist", "--basetemp",
}  # fmt: skip
SIMPLE_DESELECT = re.compile(r"\s*not\s+\w+(\s+and\s+not\s+\w+)*\s*")


@dataclass(kw_only=True)
class PytestArgs:
    args: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    deselect: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def split_pytest_args(words: list[str]) -> PytestArgs:
    """A pytest command line's options, test paths, and the markers its `-m "not a and not
    b"` deselects; report and coverage options dropped."""
    parsed = PytestArgs()
    index = 0
    while index < len(words):
        word = words[index]
        option = word.partition("=")[0]
        # pytest-cov's `--cov [SOURCE]` takes the next word unless it is an option.
        takes_value = word in PYTEST_VALUE_OPTIONS or (
            word == "--cov" and index + 1 < len(words) and not words[index + 1].startswith("-")
        )
        taken = words[index : index + 2] if takes_value else [word]
        index += len(taken)
        if option in PYTEST_DROPPED or (word.startswith("-n") and word[2:].isdigit()):
            parsed.dropped.append(" ".join(taken))
        elif word == "-m" and len(taken) == 2 and SIMPLE_DESELECT.fullmatch(taken[1]):
            parsed.deselect += re.findall(r"not\s+(\w+)", taken[1])
        elif word.startswith("-"):
            parsed.args += taken
        elif word and "{" not in word:
            parsed.paths.append(word)
    return parsed


# --- pytest configuration ----------------------------------------------------------------------


@dataclass(kw_only=True)
class PytestConfig:
    file: str | None = None
    testpaths: list[str] = field(default_factory=list)
    testpaths_line: int | None = None
    markers: dict[str, int | None] = field(default_factory=dict)  # name -> line


def read_pytest_config(files: CheckoutFiles, project: Project) -> PytestConfig:
    """testpaths and declared markers from the config file pytest itself would pick."""
    for relative, section in (("pytest.ini", "pytest"), (".pytest.ini", "pytest")):
        parser = read_ini(files, relative)
        if parser is not None:
            return _ini_pytest_config(files, relative, parser, section)
    tool = project.pyproject.get("tool")
    pytest_tool = tool.get("pytest") if isinstance(tool, dict) else None
    options = pytest_tool.get("ini_options") if isinstance(pytest_tool, dict) else None
    if isinstance(options, dict):
        return _toml_pytest_config(project, options)
    for relative, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        parser = read_ini(files, relative)
        if parser is not None and parser.has_section(section):
            return _ini_pytest_config(files, relative, parser, section)
    return PytestConfig()


def _ini_pytest_config(files: CheckoutFiles, relative: str, parser: Any, section: str) -> Any:
    text = files.text(relative) or ""
    config = PytestConfig(file=relative)
    if not parser.has_section(section):
        return config
    if parser.has_option(section, "testpaths"):
        config.testpaths = parser.get(section, "testpaths").split()
        config.testpaths_line = ini_line(text, section, "testpaths")
    if parser.has_option(section, "markers"):
        start = ini_line(text, section, "markers") or 0
        for item in ini_list(parser.get(section, "markers")):
            name = re.match(r"\s*([\w-]+)", item)
            if name:
                line = line_of(text, rf"^\s*{re.escape(name.group(1))}\b", after=start)
                config.markers[name.group(1)] = line or start
    return config


def _toml_pytest_config(project: Project, options: dict[str, Any]) -> PytestConfig:
    text = project.pyproject_text
    config = PytestConfig(file="pyproject.toml")
    start = line_of(text, r"^\s*\[tool\.pytest\.ini_options\]") or 0
    testpaths = options.get("testpaths")
    if isinstance(testpaths, str):
        testpaths = testpaths.split()
    if isinstance(testpaths, list):
        config.testpaths = [str(item) for item in testpaths]
        config.testpaths_line = line_of(text, r"^\s*testpaths\s*=", after=start)
    markers = options.get("markers")
    if isinstance(markers, str):
        markers = ini_list(markers)
    for item in markers if isinstance(markers, list) else []:
        name = re.match(r"\s*([\w-]+)", str(item))
        if name:
            line = line_of(text, rf"[\"']\s*{re.escape(name.group(1))}\b", after=start)
            config.markers[name.group(1)] = line or start
    return config


# --- setuptools: setup.cfg and setup.py ----------------------------------------------------------


def read_setuptools(files: CheckoutFiles, project: Project) -> Install:
    """Test extras (and `tests_require`) of setup.cfg, else of setup.py (read with ast)."""
    install = Install(source="setuptools")
    parser = read_ini(files, "setup.cfg")
    text = files.text("setup.cfg") or ""
    if parser is not None and parser.has_section("options.extras_require"):
        for name in TEST_NAMES + ("all",):
            if parser.has_option("options.extras_require", name):
                line = ini_line(text, "options.extras_require", name)
                detail = f"extras_require.{name}"
                install.add_extra(name, file="setup.cfg", line=line, detail=detail)
                return install
    tree = parse_python(files, "setup.py")
    if tree is None:
        return install
    names = module_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and call_name(node).split(".")[-1] == "setup":
            _setup_call(install, node, names, project=project, files=files)
    return install


def _setup_call(
    install: Install,
    node: ast.Call,
    names: dict[str, ast.AST],
    *,
    project: Project,
    files: CheckoutFiles,
) -> None:
    keywords = {keyword.arg: keyword.value for keyword in node.keywords if keyword.arg}
    extras = literal(keywords.get("extras_require"), names)
    if isinstance(extras, dict):
        for name in TEST_NAMES + ("all",):
            if name in extras:
                line = keywords["extras_require"].lineno
                install.add_extra(name, file="setup.py", line=line, detail=f"extras_require.{name}")
                return
    tests_require = literal(keywords.get("tests_require"), names)
    if isinstance(tests_require, list):
        line = keywords["tests_require"].lineno
        for item in tests_require:
            if isinstance(item, str):
                add_entry(install, item, project=project, files=files, file="setup.py", line=line)


def read_setuptools_metadata(files: CheckoutFiles) -> tuple[str | None, dict[str, list[str]]]:
    """The project's name and extras_require from setup.cfg, else setup.py (ast)."""
    parser = read_ini(files, "setup.cfg")
    name, extras = None, {}
    if parser is not None:
        if parser.has_option("metadata", "name"):
            name = parser.get("metadata", "name").strip()
        if parser.has_section("options.extras_require"):
            extras = {k: ini_list(v) for k, v in parser.items("options.extras_require")}
    tree = parse_python(files, "setup.py") if name is None or not extras else None
    if tree is None:
        return name, extras
    names = module_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and call_name(node).split(".")[-1] == "setup":
            keywords = {k.arg: literal(k.value, names) for k in node.keywords if k.arg}
            if name is None and isinstance(keywords.get("name"), str):
                name = keywords["name"]
            if not extras and isinstance(keywords.get("extras_require"), dict):
                extras = {str(k): string_list(v) for k, v in keywords["extras_require"].items()}
    return name, extras


# --- tox, nox, hatch -----------------------------------------------------------------------------


@dataclass(kw_only=True)
class RunSource:
    """A tool's test environment: how it runs the tests (one step of commands) and what it
    installs for them."""

    kind: str
    step: Step
    install: Install


def substitute_placeholders(command: str) -> str:
    """tox/hatch placeholders: `{posargs:X}` / `{args:X}` -> X, `{envpython}` -> python."""
    command = re.sub(r"\{(posargs|args)(:([^}]*))?\}", lambda m: m.group(3) or "", command)
    command = command.replace("{envpython}", "python").replace("{envbindir}/", "")
    return re.sub(r"\{toxinidir\}/?", "", command)


ToxOptions = tuple[str, dict[str, str], Any]  # file, options as ini text, key -> line


def read_tox(files: CheckoutFiles, project: Project) -> RunSource | None:
    """tox's base test env: tox.ini `[testenv]`, `[tool.tox]` of pyproject.toml (its
    legacy_tox_ini, or native `env_run_base`), or tox.toml `[env_run_base]`."""
    found = _tox_ini_options(files, project) or _tox_toml_options(files, project)
    if found is None:
        return None
    relative, options, line = found
    install = Install(source="tox")
    for entry in ini_list(options.get("deps", "")):
        entry = re.sub(r"^[\w,-]+:\s+", "", entry)  # tox factor conditions ("py311: numpy")
        _tox_dep(install, entry, project=project, files=files, file=relative, line=line("deps"))
    for extra in re.split(r"[\s,]+", options.get("extras", "")):
        install.add_extra(extra, file=relative, line=line("extras"), detail="testenv.extras")
    env_items = ini_env(options.get("setenv", "")).items()
    env = {k: (v, relative, line("setenv")) for k, v in env_items}
    commands = [substitute_placeholders(c) for c in ini_list(options.get("commands", ""))]
    changedir = substitute_placeholders(options.get("changedir", "")).strip() or "."
    step = Step(file=relative, job="testenv", run="\n".join(commands), line=line("commands"),
                env=env, cwd=changedir, runs_on="")  # fmt: skip
    return RunSource(kind="tox", step=step, install=install)


def _tox_ini_options(files: CheckoutFiles, project: Project) -> ToxOptions | None:
    relative, text = "tox.ini", files.text("tox.ini")
    if text is None:
        tool = project.pyproject.get("tool")
        tox = tool.get("tox") if isinstance(tool, dict) else None
        legacy = tox.get("legacy_tox_ini") if isinstance(tox, dict) else None
        if not isinstance(legacy, str):
            return None
        relative, text = "pyproject.toml", legacy
    parser = read_ini(files, relative, text)
    if parser is None or not parser.has_section("testenv"):
        return None
    line_text = text if relative == "tox.ini" else project.pyproject_text
    options = dict(parser.items("testenv"))
    return relative, options, lambda key: ini_line(line_text, "testenv", key)


TOX_TOML_KEYS = {"deps": "deps", "extras": "extras", "commands": "commands",
                 "setenv": "set_env", "changedir": "change_dir"}  # fmt: skip


def _tox_toml_options(files: CheckoutFiles, project: Project) -> ToxOptions | None:
    """Native TOML tox config, as the ini texts `read_tox` reads."""
    relative, text, data = "pyproject.toml", project.pyproject_text, project.pyproject
    tool = data.get("tool")
    tox = tool.get("tox") if isinstance(tool, dict) else None
    prefix = r"\[tool\.tox\.env_run_base\]"
    if not isinstance(tox, dict) and files.text("tox.toml") is not None:
        relative, text, prefix = "tox.toml", files.text("tox.toml") or "", r"\[env_run_base\]"
        try:
            tox = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, RecursionError):
            files.note("tox.toml", "skipped: not valid TOML")
            return None
    base = tox.get("env_run_base") if isinstance(tox, dict) else None
    if not isinstance(base, dict):
        return None
    options = {ini_key: _tox_toml_text(base.get(key)) for ini_key, key in TOX_TOML_KEYS.items()}
    start = line_of(text, prefix) or 0
    return (
        relative,
        options,
        lambda key: line_of(text, rf"^\s*{TOX_TOML_KEYS[key]}\s*=", after=start),
    )


def _tox_toml_text(value: Any) -> str:
    if isinstance(value, dict):
        return "\n".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return "\n".join(shlex.join(map(str, v)) if isinstance(v, list) else str(v) for v in value)
    return str(value) if isinstance(value, str) else ""


def _tox_dep(
    install: Install,
    entry: str,
    *,
    project: Project,
    files: CheckoutFiles,
    file: str,
    line: int | None,
) -> None:
    try:
        words = shlex.split(substitute_placeholders(entry)) if entry else []
    except ValueError:  # unbalanced quotes
        install.provenance.append(provenance("note", file, line, f"dropped {entry}"))
        return
    if words[:1] in (["-r"], ["-e"], ["-c"]) or (words and words[0].startswith("-r")):
        words = [words[0][:2], words[0][2:], *words[1:]] if len(words[0]) > 2 else words
        pip_install(
            install,
            ["pip", "install", *words],
            project=project,
            files=files,
            file=file,
            line=line or 0,
        )
    elif words:
        add_entry(install, entry, project=project, files=files, file=file, line=line or 0)


def read_nox(files: CheckoutFiles, project: Project) -> RunSource | None:
    """The noxfile's test session (read with ast): its installs, pytest run and env."""
    tree = parse_python(files, "noxfile.py")
    if tree is None:
        return None
    names = module_names(tree)
    sessions = [
        node for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("session" in ast.unparse(d) for d in node.decorator_list)
    ]  # fmt: skip
    sessions.sort(key=lambda node: 0 if "test" in node.name else 1)
    for session in sessions:
        source = _nox_session(session, names, project=project, files=files)
        if source is not None:
            return source
    return None


def _nox_session(
    session: ast.FunctionDef,
    names: dict[str, ast.AST],
    *,
    project: Project,
    files: CheckoutFiles,
) -> RunSource | None:
    install = Install(source="nox")
    commands: list[str] = []
    env: dict[str, tuple[str, str, int | None]] = {}
    for node in ast.walk(session):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        args = [literal(arg, names) for arg in node.args]
        words = [arg for arg in args if isinstance(arg, str)]
        if node.func.attr == "install":
            pip_install(
                install,
                ["pip", "install", *words],
                project=project,
                files=files,
                file="noxfile.py",
                line=node.lineno,
            )
        elif node.func.attr == "run" and words:
            commands.append(shlex.join(words))
            for keyword in node.keywords:
                value = literal(keyword.value, names) if keyword.arg == "env" else None
                for key, item in (value if isinstance(value, dict) else {}).items():
                    env[str(key)] = (str(item), "noxfile.py", node.lineno)
    if not commands:
        return None
    step = Step(
        file="noxfile.py",
        job=session.name,
        run="\n".join(commands),
        line=session.lineno,
        env=env,
        cwd=".",
        runs_on="",
    )
    return RunSource(kind="nox", step=step, install=install)


def read_hatch(files: CheckoutFiles, project: Project) -> RunSource | None:
    """hatch's test environment (`hatch-test`, `test` or `tests`) of pyproject.toml."""
    tool = project.pyproject.get("tool")
    hatch = tool.get("hatch") if isinstance(tool, dict) else None
    envs = hatch.get("envs") if isinstance(hatch, dict) else None
    if not isinstance(envs, dict):
        return None
    name = next((n for n in ("hatch-test", "test", "tests") if isinstance(envs.get(n), dict)), "")
    if not name:
        return None
    table, text = envs[name], project.pyproject_text
    start = line_of(text, rf"^\s*\[tool\.hatch\.envs\.\"?{re.escape(name)}\"?") or 0
    install = Install(source="hatch")
    for key in ("dependencies", "extra-dependencies"):
        line = line_of(text, rf"^\s*{key}\s*=", after=start) or start
        for entry in string_list(table.get(key)):
            add_entry(
                install, str(entry), project=project, files=files, file="pyproject.toml", line=line
            )
    line = line_of(text, r"^\s*features\s*=", after=start) or start
    for extra in string_list(table.get("features")):
        install.add_extra(str(extra), file="pyproject.toml", line=line, detail=f"{name}.features")
    scripts = table.get("scripts") if isinstance(table.get("scripts"), dict) else {}
    lines = [scripts[k] for k in scripts if isinstance(scripts[k], str)]
    lines += [i for v in scripts.values() if isinstance(v, list) for i in v if isinstance(i, str)]
    env_vars = table.get("env-vars") if isinstance(table.get("env-vars"), dict) else {}
    env: dict[str, tuple[str, str, int | None]] = {
        str(k): (str(v), "pyproject.toml", start) for k, v in env_vars.items()
    }
    if name == "hatch-test" and not lines:
        lines = ["pytest"]
    step = Step(
        file="pyproject.toml",
        job=name,
        line=start or None,
        env=env,
        cwd=".",
        run="\n".join(substitute_placeholders(line) for line in lines),
        runs_on="",
    )
    return RunSource(kind="hatch", step=step, install=install)
