"""Docs that cannot drift: every name docs/INTERFACES.md gives resolves in the code, with the
parameters it lists (and, where it lists a whole signature, all of them, with their defaults); every
relative link and #anchor in README.md and docs/*.md lands; the README stays a front door."""

from __future__ import annotations

import ast
import builtins
import dataclasses
import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INTERFACES = ROOT / "docs" / "INTERFACES.md"
README_MAX_LINES = 320

# ---------------------------------------------------------------- markdown: headings, anchors, links

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _outside_code(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks, inline code spans blanked."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, re.sub(r"`[^`]*`", lambda m: " " * len(m.group()), line)))
    return lines


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: link text kept, markup and punctuation dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every #anchor a Markdown file offers (repeated headings get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not heading:
            continue
        slug = _slug(heading.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    """'file:line: target (why)' for each relative link or anchor in ``path`` that does not land."""
    problems = []
    for number, line in _outside_code(path.read_text(encoding="utf-8")):
        for target in _LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue                                   # http:, https:, mailto:
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}:{number}: {target}"
            if not dest.exists():
                problems.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{where} (no heading with that anchor)")
    return problems


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# ---------------------------------------------------------------- INTERFACES.md: names against code

_EXTERNAL = {"grid_sample", "BORDER_REPLICATE", "O_EXCL"}     # torch's and OpenCV's, not ours
_FILE_SUFFIXES = {"json", "jsonl", "csv", "pt", "h5", "mp4", "png", "onnx", "safetensors", "flo",
                  "py", "lock", "tmp", "md", "txt", "mkv", "jpg"}
_IDENT = r"[A-Za-z_]\w*"


def _outside_quotes(text: str, start: int = 0):
    """(index, character, bracket depth after it) for each character of ``text`` from ``start`` that
    is not inside a quoted string."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            quote = "" if ch == quote else quote
            continue
        if ch in "\"'":
            quote = ch
            continue
        depth += (ch in "([{") - (ch in ")]}")
        yield i, ch, depth


def _top_level_split(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep`` where no bracket or quote is open."""
    parts, start = [], 0
    for i, ch, depth in _outside_quotes(text):
        if depth == 0 and i >= start and text.startswith(sep, i) and ch not in ")]}":
            parts.append(text[start:i])
            start = i + len(sep)
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _balanced(text: str, open_at: int) -> int:
    """Index just past the bracket that closes the one at ``open_at``."""
    for i, ch, depth in _outside_quotes(text, open_at):
        if depth == 0 and ch in ")]}":
            return i + 1
    raise ValueError(f"unbalanced brackets in {text!r}")


def _strip_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def _depth(text: str) -> int:
    return sum(text.count(c) for c in "([{") - sum(text.count(c) for c in ")]}")


class Checker:
    """Resolves the names of one INTERFACES.md section (its modules, then what its text names)."""

    def __init__(self, modules: list[str]):
        self.problems: list[str] = []
        self.modules = []
        for name in ["vidstyle.errors", *modules]:
            try:
                self.modules.append(importlib.import_module(name))
            except ImportError as exc:
                self.problems.append(f"module {name} does not import ({exc})")
        self.current = None            # the class that `.attr` lines belong to

    # -- lookups

    def module_named(self, short: str):
        for module in self.modules:
            if module.__name__.rsplit(".", 1)[-1] == short:
                return module
        return None

    def lookup(self, dotted: str, where: str, classes=()):
        """The object ``dotted`` names: a vidstyle path, a section module's short name and
        attributes, or a name in one of the section's modules (or an attribute of ``classes``)."""
        parts = dotted.split(".")
        if parts[0] == "vidstyle":
            for cut in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:cut]))
                except ImportError:
                    continue
                return self._attrs(obj, parts[cut:], dotted, where)
        module = self.module_named(parts[0]) if len(parts) > 1 else None
        if module is not None:
            return self._attrs(module, parts[1:], dotted, where)
        for owner in [*self.modules[1:], self.modules[0], *classes]:
            if hasattr(owner, parts[0]):
                return self._attrs(owner, parts, dotted, where)
        self.problems.append(f"{where}: `{dotted}` not found in "
                             f"{', '.join(m.__name__ for m in self.modules[1:]) or 'vidstyle.errors'}")
        return None

    def _attrs(self, obj, names, dotted, where):
        for name in names:
            if not _has_attr(obj, name):
                owner = getattr(obj, "__name__", obj)
                self.problems.append(f"{where}: `{dotted}`: {owner!s} has no `{name}`")
                return None
            obj = getattr(obj, name, None)
        return obj

    # -- signatures

    def check_call(self, obj, owner_name: str, args_text: str, where: str, signature: bool = True):
        """The parameters a doc lists for ``obj`` exist, carry the defaults it gives, and, unless the
        list elides some (a bare ``...``), are all of them. A call in prose (``signature=False``) may
        pass values for positional parameters: only its keywords and how many it passes count."""
        if obj is None:
            return
        params = _parameters(obj)
        if params is None:
            self.problems.append(f"{where}: `{owner_name}` is not callable")
            return
        has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        named = [p for p in params.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        covered, elided = set(), False
        for position, arg in enumerate(_top_level_split(args_text, ",")):
            if arg in ("*", "/") or re.fullmatch(r"\.\.\.\w*\.*", arg):
                elided = elided or arg.startswith("...")
                continue
            if arg.startswith("*"):
                continue
            match = re.fullmatch(rf"({_IDENT})\s*(?::[^=]+)?(?:=\s*(.+))?", arg)
            if not match:                                   # a pattern such as [(name, frames), ...]
                if position < len(named):
                    covered.add(named[position].name)
                continue
            name, default = match.group(1), match.group(2)
            if not signature and default is None:
                if position >= len(named) and not any(p.kind is p.VAR_POSITIONAL for p in params.values()):
                    self.problems.append(f"{where}: `{owner_name}` takes fewer arguments than given")
                continue
            if name not in params:
                if not has_var_kw:
                    self.problems.append(f"{where}: `{owner_name}` has no parameter `{name}`")
                continue
            covered.add(name)
            self._check_default(params[name], default, f"{where}: `{owner_name}({name}=...)`")
        missing = [p.name for p in named if p.name not in covered and not p.name.startswith("_")]
        if missing and signature and not elided:
            self.problems.append(f"{where}: `{owner_name}(...)` lists no {', '.join(missing)} "
                                 "(add them, or `...` where the list is partial)")

    def _check_default(self, param, doc_default, where):
        if doc_default is None or param.default is inspect.Parameter.empty:
            return
        try:
            expected = ast.literal_eval(doc_default.strip())
        except (ValueError, SyntaxError):
            try:
                expected = ast.literal_eval(doc_default.split()[0])
            except (ValueError, SyntaxError, IndexError):
                return                                      # a name or an expression: not compared
        if expected is Ellipsis:
            return                                          # `config=...`: the default is elided
        actual = param.default
        if isinstance(actual, _Factory):
            actual = actual.make()
        if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
            expected, actual = tuple(expected), tuple(actual)
        if expected != actual:
            self.problems.append(f"{where}: the doc says {doc_default.strip()}, the code {actual!r}")

    def check_fields(self, cls, fields_text: str, where: str):
        """``@dataclass class X: a; b=1`` (or ``a: int; b: int``): X's fields, all of them."""
        if cls is None:
            return
        if not dataclasses.is_dataclass(cls):
            self.problems.append(f"{where}: `{cls.__name__}` is not a dataclass")
            return
        fields = {f.name: f for f in dataclasses.fields(cls)}
        listed = set()
        for item in _top_level_split(fields_text, ";"):
            match = re.fullmatch(rf"({_IDENT})\s*(?::\s*[^=]*?)?\s*(?:=\s*(.+))?", item)
            if not match:
                continue
            name, default = match.group(1), match.group(2)
            listed.add(name)
            if name not in fields:
                self.problems.append(f"{where}: `{cls.__name__}` has no field `{name}`")
                continue
            field = fields[name]
            param = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=(
                field.default if field.default is not dataclasses.MISSING else
                _Factory(field.default_factory) if field.default_factory is not dataclasses.MISSING
                else inspect.Parameter.empty))
            self._check_default(param, default, f"{where}: `{cls.__name__}.{name}`")
        missing = [n for n, f in fields.items() if f.init and n not in listed and not n.startswith("_")]
        if missing:
            self.problems.append(f"{where}: `{cls.__name__}` fields not listed: {', '.join(missing)}")

    # -- statements of a code block

    def statement(self, text: str, where: str):
        """One statement of a code block: a class with fields, a call, a constant, `.attr` items."""
        text = text.strip()
        decorated = re.match(r"^@dataclass(?:\([^)]*\))?\s*", text)
        if decorated:
            text = text[decorated.end():]
        head = re.match(rf"^class\s+({_IDENT})\s*:\s*(.*)$", text)
        if head:                                            # @dataclass class X: a; b=1
            self.current = self.lookup(head.group(1), where)
            if head.group(2):
                self.check_fields(self.current, head.group(2), where)
            else:
                self.pending_fields = (self.current, [])
            return
        text = re.sub(r"^class\s+", "", text)
        for item in _top_level_split(text, ";"):
            for piece in re.split(r"\s{3,}|\s/\s", item):
                self._item(piece.strip(), where)

    def _item(self, item: str, where: str):
        if not item:
            return
        if item.startswith(".") or re.search(r",\s*\.\w", item):     # .a, .b (== len), .c()
            for part in _top_level_split(item, ","):
                self._member(part, where)
            return
        constant = re.match(r"^([A-Z][A-Z0-9_]*)\s*(=|:)\s*(.*)$", item)
        if constant:
            obj = self.lookup(constant.group(1), where)
            if constant.group(2) == "=" and obj is not None:
                try:
                    expected = ast.literal_eval(constant.group(3).strip())
                except (ValueError, SyntaxError):
                    return
                if isinstance(expected, (list, tuple)) and isinstance(obj, (list, tuple)):
                    expected, obj = tuple(expected), tuple(obj)
                if expected != obj:
                    self.problems.append(f"{where}: `{constant.group(1)}` is {obj!r}, the doc says "
                                         f"{constant.group(3).strip()}")
            return
        call = re.match(rf"^({_IDENT}(?:\.{_IDENT})*)\(", item)
        if not call:
            return                                          # words, a return value, a pattern
        dotted = call.group(1)
        if dotted.split(".")[0] in vars(builtins) or dotted in _EXTERNAL:
            return
        obj = self.lookup(dotted, where)
        if "." in dotted:                                   # Class.method(...): .attr lines follow Class
            owner = self._quiet_lookup(dotted.rsplit(".", 1)[0])
            if inspect.isclass(owner):
                self.current = owner
        end = _balanced(item, call.end() - 1)
        self.check_call(obj, dotted, item[call.end():end - 1], where)
        if inspect.isclass(obj):
            self.current = obj
        rest = item[end:]
        chained = re.match(rf"^\.({_IDENT})\(", rest)        # X(...).method(...)
        if chained and obj is not None:
            method = getattr(obj, chained.group(1), None) if inspect.isclass(obj) else None
            if method is None:
                self.problems.append(f"{where}: `{dotted}` has no `{chained.group(1)}`")
                return
            close = _balanced(rest, chained.end() - 1)
            self.check_call(method, f"{dotted}.{chained.group(1)}", rest[chained.end():close - 1], where)

    def _member(self, part: str, where: str):
        """`.name`, `.name(args)` or `.name -> what`: an attribute of the current class."""
        match = re.match(rf"^\.({_IDENT})(\()?", part.strip())
        if not match:
            return
        owner = self.current
        if owner is None:
            self.problems.append(f"{where}: `.{match.group(1)}` follows no class")
            return
        name = match.group(1)
        if not _has_attr(owner, name):
            self.problems.append(f"{where}: `{owner.__name__}` has no `{name}`")
            return
        if match.group(2):
            close = _balanced(part.strip(), match.end() - 1)
            self.check_call(getattr(owner, name), f"{owner.__name__}.{name}",
                            part.strip()[match.end():close - 1], where)

    def code_block(self, lines: list[tuple[int, str]]):
        self.current, self.pending_fields, buffer, start = None, None, "", 0
        for number, raw in lines:
            line = _strip_comment(raw).rstrip()
            if not line.strip():
                continue
            if self.pending_fields is not None and re.match(rf"^\s+{_IDENT}\s*:", line):
                self.pending_fields[1].append(line.strip())    # class X:\n    a: int; b: int
                continue
            if self.pending_fields is not None:
                cls, field_lines = self.pending_fields
                self.check_fields(cls, "; ".join(field_lines), f"INTERFACES.md:{start}")
                self.pending_fields = None
            if not buffer:
                start = number
                if line.lstrip().startswith(("[", "(", "{")):
                    continue                                # what an instance returns: not a name
            buffer = f"{buffer} {line.strip()}" if buffer else line
            if _depth(buffer) > 0:
                continue
            self.statement(buffer, f"INTERFACES.md:{start}")
            buffer = ""
        if self.pending_fields is not None:
            cls, field_lines = self.pending_fields
            self.check_fields(cls, "; ".join(field_lines), f"INTERFACES.md:{start}")

    # -- prose

    def prose(self, number: int, paragraph: str):
        """Names in backticks in a paragraph: calls, dotted names, Classes and CONSTANTS."""
        where = f"INTERFACES.md:{number}"
        context = [m.group() for m in re.finditer(r"vidstyle(?:\.\w+)+", paragraph)]
        for dotted in context:
            if dotted.rsplit(".", 1)[-1] not in _FILE_SUFFIXES:
                self.lookup(dotted, where)
        classes = []
        for dotted in context:
            obj = self._quiet_lookup(dotted)
            if inspect.isclass(obj):
                classes.append(obj)
            module = inspect.getmodule(obj) if obj is not None else None
            if module is not None and module.__name__.startswith("vidstyle") and module not in self.modules:
                self.modules.append(module)                 # vidstyle.a.b.f: a.b's names are in context
        for span in re.findall(r"`([^`]+)`", paragraph):
            span = span.strip()
            match = re.match(rf"{_IDENT}(?:\.{_IDENT})*", span)
            if not match or span.startswith("vidstyle."):
                continue
            dotted, rest, args = match.group(), span[match.end():], None
            if rest.startswith("("):
                end = _balanced(rest, 0)
                args, rest = rest[1:end - 1], rest[end:]
            if not re.fullmatch(r"(\s*->.*)?|\s+=\s+\S+", rest):
                continue                                    # a formula, a setting, a command
            first, last = dotted.split(".")[0], dotted.rsplit(".", 1)[-1]
            if dotted in _EXTERNAL or first in vars(builtins) or last in _FILE_SUFFIXES:
                continue
            known_first = self.module_named(first) or any(hasattr(c, first) for c in classes) or any(
                hasattr(m, first) for m in self.modules)
            is_name = args is not None or re.search(r"[A-Z]", dotted) or "." in dotted
            if not is_name or ("." in dotted and not known_first):
                continue
            obj = self.lookup(dotted, where, classes)
            if inspect.isclass(obj):
                classes.append(obj)
            if args is not None:
                self.check_call(obj, dotted, args, where, signature=False)

    def _quiet_lookup(self, dotted):
        saved = list(self.problems)
        obj = self.lookup(dotted, "")
        self.problems = saved
        return obj


class _Factory:
    def __init__(self, factory):
        self.make = factory


def _has_attr(obj, name: str) -> bool:
    """An attribute of a module or class, a dataclass field, or one __init__ sets on ``self``."""
    if hasattr(obj, name):
        return True
    if inspect.isclass(obj):
        if dataclasses.is_dataclass(obj) and name in {f.name for f in dataclasses.fields(obj)}:
            return True
        if name in getattr(obj, "_fields", ()):            # a NamedTuple
            return True
        for klass in obj.__mro__:
            try:
                source = inspect.getsource(klass)
            except (OSError, TypeError):
                continue
            if re.search(rf"self\.{name}\b(?:\s*,\s*self\.\w+)*\s*(?::[^=\n]+)?=(?!=)", source):
                return True
    return False


def _parameters(obj):
    try:
        params = dict(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        return None
    if params and next(iter(params)) in ("self", "cls"):     # a method looked up on its class
        params.pop(next(iter(params)))
    if dataclasses.is_dataclass(obj):                        # field(default_factory=...) as a value
        for field in dataclasses.fields(obj):
            if field.name in params and field.default_factory is not dataclasses.MISSING:
                params[field.name] = params[field.name].replace(default=_Factory(field.default_factory))
    return params


def _section_modules(heading: str) -> list[str]:
    """`vidstyle.a.b / c / d (note)` -> vidstyle.a.b, vidstyle.a.c, vidstyle.a.d (siblings), plus
    every vidstyle.x.y named anywhere in the heading."""
    names = re.findall(r"vidstyle(?:\.\w+)+", heading)
    if not names:
        return []
    package = names[0].rsplit(".", 1)[0]
    head = heading.split("(")[0]
    for token in re.split(r"[/,]", head)[1:]:
        token = token.strip()
        if re.fullmatch(_IDENT, token):
            names.append(f"{package}.{token}")
    return list(dict.fromkeys(names))


def interface_problems(text: str) -> list[str]:
    """Every name, parameter, default and field of an INTERFACES.md text that the code lacks."""
    problems = []
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    offset = text[: len(sections[0])].count("\n")
    for section in sections[1:]:
        heading, _, body = section.partition("\n")
        first_line = offset + 1
        offset += section.count("\n")
        checker = Checker(_section_modules(heading))
        block, fenced, paragraph, paragraph_start = [], False, [], 0
        for i, line in enumerate(body.splitlines(), first_line + 1):
            if _FENCE.match(line):
                if fenced:
                    checker.code_block(block)
                    block = []
                fenced = not fenced
                continue
            if fenced:
                block.append((i, line))
            elif line.strip():
                if not paragraph:
                    paragraph_start = i
                paragraph.append(line)
            elif paragraph:
                checker.prose(paragraph_start, " ".join(paragraph))
                paragraph = []
        if paragraph:
            checker.prose(paragraph_start, " ".join(paragraph))
        problems += [f"## {heading.strip()}: {p}" for p in checker.problems]
    return problems


# ---------------------------------------------------------------- the tests


def test_interfaces_doc_names_only_what_the_code_has():
    problems = interface_problems(INTERFACES.read_text(encoding="utf-8"))
    assert not problems, "docs/INTERFACES.md has drifted from the code:\n" + "\n".join(problems)


@pytest.mark.parametrize("broken, expected", [
    ("## vidstyle.io.video\n```python\nprobe(path, colour=None) -> VideoInfo\n```\n",
     "no parameter `colour`"),
    ("## vidstyle.io.video\n```python\nno_such_function(path)\n```\n", "`no_such_function` not found"),
    ("## vidstyle.io.nosuchmodule\n", "does not import"),
    ("## vidstyle.infer.inferconfig\n```python\nEngineConfig(device=\"auto\")\n```\n", "lists no"),
    ("## vidstyle.flow.optical\n```python\ncompute_pair(a, b, method=\"dis\", **params)\n```\n",
     "the doc says \"dis\""),
    ("## vidstyle.flow.pairstats\n```python\n@dataclass class PairInfo: valid_fraction: float; cut: bool\n"
     "```\n",
     "fields not listed: std_t, std_t1"),
    ("## vidstyle.flow.flowstore\n```python\nclass FlowFile(path)\n    .num_frames, .no_such_attribute\n"
     "```\n",
     "has no `no_such_attribute`"),
    ("## Conventions\n- Finished files: `vidstyle.fsutil.atomic_write(path)`.\n", "has no `atomic_write`"),
])
def test_interfaces_check_catches_a_drifted_doc(broken, expected):
    problems = interface_problems(broken)
    assert any(expected in p for p in problems), problems


def test_links_and_anchors_in_readme_and_docs_land():
    problems = [p for path in doc_files() for p in broken_links(path)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_link_check_catches_a_missing_file_and_a_missing_anchor(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "other.md").write_text("# Title\n\n## A `code` heading: yes\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-code-heading-yes) [ok](#top) [gone](nothere.md)\n"
                    "[bad anchor](other.md#nope) `[not a link](nothere.md)`\n\n# Top\n"
                    "```\n[in code](nothere.md)\n```\n")
    problems = broken_links(page)
    assert len(problems) == 2, problems
    assert "nothere.md (no such file)" in problems[0] and "other.md#nope" in problems[1]


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"
    assert not re.search(r"(?<![\w.])/(work|tmp|root)\b", text), "the README names a machine path"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = [line.strip() for line in ci.splitlines() if "pytest" in line][-1]
    assert test_command in text, f"the README's test command is not CI's: {test_command}"

