"""Reading the journeys file: YAML, with line numbers, into a checked ``JourneyBook``.

The file is read once, at start. Anything wrong is a :class:`JourneysFileError` that names the file,
the line and what to change; nothing half-valid is ever used. The names it accepts come from the
core's own tables (:mod:`~pipeline.journeys.kinds`, :mod:`~pipeline.journeys.conditions`), so the
reader and the engine cannot disagree on what a trigger or a condition is. This module is the only
one that parses the file; the core itself reads no files and imports no YAML.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from pipeline.journeys.conditions import CONDITIONS
from pipeline.journeys.holdout import BASIS_POINTS, DEFAULT_KEY, Holdouts
from pipeline.journeys.kinds import APP_QUIET, EVENT_KINDS, TRIGGERS, EventKind
from pipeline.journeys.model import Channel, Priority, QuietHours
from pipeline.journeys.rules import (
    DEFAULT_QUIET_CHANNELS,
    EXIT_REACH,
    NEVER_HELD,
    SCOPES,
    Condition,
    Digest,
    FrequencyCap,
    JourneyBook,
    JourneyRule,
    StepRule,
)


class JourneysFileError(ValueError):
    def __init__(self, source: str, line: int | None, message: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line


DEFAULT_JOURNEYS = Path(__file__).with_name("journeys") / "default-journeys.yaml"


def load_journeys(path: Path | str | None = None) -> JourneyBook:
    source = Path(path) if path is not None else DEFAULT_JOURNEYS
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise JourneysFileError(str(source), None, f"cannot read it: {exc.strerror}") from None
    return parse_journeys(text, str(source))


def parse_journeys(text: str, source: str = "<journeys>") -> JourneyBook:
    loader = _Loader(text)
    loader.name = source  # so that errors raised while constructing name the file
    try:
        document = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise JourneysFileError(source, line, f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise JourneysFileError(source, None, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return _Reader(source).book(document)


# -- YAML with line numbers --------------------------------------------------------------------


class _Map(dict[str, Any]):
    """A YAML mapping that remembers the line of each of its keys."""

    def __init__(self, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[str, int] = {}


class _List(list[Any]):
    """A YAML list that remembers the line of each of its items."""

    def __init__(self, items: list[Any], line: int, lines: list[int]) -> None:
        super().__init__(items)
        self.line = line
        self.lines = lines


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    mapping = _Map(node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise JourneysFileError(
                loader.name, key_node.start_mark.line + 1, f"key {key!r} must be text"
            )
        if key in mapping:
            raise JourneysFileError(
                loader.name, key_node.start_mark.line + 1, f"{key!r} is given twice"
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_list(loader: _Loader, node: yaml.SequenceNode) -> _List:
    return _List(
        [loader.construct_object(child, deep=True) for child in node.value],
        node.start_mark.line + 1,
        [child.start_mark.line + 1 for child in node.value],
    )


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_list)


# -- reading and checking ----------------------------------------------------------------------

# As plain text: the reader's messages quote them and suggest the closest.
_NAMES_OF_KINDS = [kind.value for kind in EVENT_KINDS]
_NAMES_OF_TRIGGERS = [kind.value for kind in TRIGGERS]
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_SHARE = re.compile(r"(\d{1,3}(?:\.\d{1,2})?) ?%")


def parse_duration(text: str) -> timedelta | None:
    """``30m``, ``48h``, ``1d12h``, ``2w`` or ``0`` as a timedelta; None if it is not one."""
    text = text.strip()
    if text == "0":
        return timedelta(0)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.shares: dict[str, int] = {}  # the journeys' own holdouts, as they are read
        self.step_shares: dict[tuple[str, str], int] = {}

    def fail(self, line: int | None, message: str) -> JourneysFileError:
        return JourneysFileError(self.source, line, message)

    def book(self, document: Any) -> JourneyBook:
        root = self.mapping(
            document, None, "the file", {"version", "defaults", "exits", "holdouts", "journeys"}
        )
        if root.get("version", 1) != 1:
            raise self.fail(root.lines.get("version"), "version must be 1")
        defaults = self.mapping(
            root.get("defaults", _Map()),
            root.lines.get("defaults"),
            "defaults",
            {"locale", "timezone", "quiet_hours", "quiet_hours_hold", "frequency_caps"},
        )
        window = self.quiet_hours(defaults.get("quiet_hours"), defaults.lines.get("quiet_hours"))
        hold = self.quiet_hold(
            defaults.get("quiet_hours_hold"), defaults.lines.get("quiet_hours_hold")
        )
        caps = self.caps(defaults.get("frequency_caps", []), defaults.lines.get("frequency_caps"))
        exits = self.exits(root.get("exits", _Map()), root.lines.get("exits"))
        journeys_node = root.get("journeys")
        if not isinstance(journeys_node, _Map) or not journeys_node:
            raise self.fail(root.lines.get("journeys", root.line), "`journeys:` must list journeys")
        journeys = tuple(
            journey
            for name, body in journeys_node.items()
            if (journey := self.journey(name, body, journeys_node.lines[name])) is not None
        )
        holdouts = self.holdouts(root.get("holdouts"), root.lines.get("holdouts"))
        quiet = [j for j in journeys if j.trigger == APP_QUIET]
        if len(quiet) > 1:
            raise self.fail(
                journeys_node.lines[quiet[1].name],
                f"only one journey may have trigger {APP_QUIET} (also: {quiet[0].name})",
            )
        return JourneyBook(
            journeys=journeys,
            exits=exits,
            quiet_hours=window,
            quiet_channels=hold,
            frequency_caps=caps,
            locale=self.text(defaults.get("locale", "en"), defaults.lines.get("locale"), "locale"),
            timezone=self.text(
                defaults.get("timezone", "UTC"), defaults.lines.get("timezone"), "timezone"
            ),
            source=self.source,
            holdouts=holdouts,
        )

    def journey(self, name: str, body: Any, line: int) -> JourneyRule | None:
        if not _NAME.fullmatch(name):
            raise self.fail(line, f"journey name {name!r}: use lower_case_with_underscores")
        where = f"journeys.{name}"
        keys = {
            "enabled",
            "priority",
            "trigger",
            "scope",
            "urgent",
            "conditions",
            "exit_on",
            "quiet_for",
            "holdout",
            "steps",
        }
        spec = self.mapping(body, line, where, keys)
        if not self.flag(spec.get("enabled", True), spec.lines.get("enabled"), "enabled"):
            return None
        for required in ("priority", "trigger", "steps"):
            if required not in spec:
                raise self.fail(spec.line, f"{where}: `{required}:` is missing")
        priority = self.choice(
            spec["priority"], spec.lines["priority"], "priority", [p.lower() for p in Priority]
        )
        trigger = EventKind(
            self.choice(spec["trigger"], spec.lines["trigger"], "trigger", _NAMES_OF_TRIGGERS)
        )
        scope = self.choice(
            spec.get("scope", "customer" if trigger == APP_QUIET else "order"),
            spec.lines.get("scope"),
            "scope",
            list(SCOPES),
        )
        quiet_for = None
        if trigger == APP_QUIET:
            if "quiet_for" not in spec:
                raise self.fail(spec.line, f"{where}: an APP_QUIET trigger needs `quiet_for:`")
            quiet_for = self.duration(spec["quiet_for"], spec.lines["quiet_for"], "quiet_for")
            if quiet_for <= timedelta(0):
                raise self.fail(spec.lines["quiet_for"], "quiet_for must be longer than 0")
            if scope != "customer":
                raise self.fail(spec.lines.get("scope"), "an APP_QUIET journey has scope customer")
        elif "quiet_for" in spec:
            raise self.fail(spec.lines["quiet_for"], "quiet_for is only for trigger APP_QUIET")
        steps_node = spec["steps"]
        if not isinstance(steps_node, _List) or not steps_node:
            raise self.fail(spec.lines["steps"], f"{where}.steps must be a list of steps")
        steps = tuple(
            self.step(name, index, item, steps_node.lines[index])
            for index, item in enumerate(steps_node)
        )
        names = [step.name for step in steps]
        for index, step_name in enumerate(names):
            if step_name in names[:index]:
                raise self.fail(steps_node.lines[index], f"{where}: two steps named {step_name!r}")
        # Each journey's and step's own holdout; the reader collects them for the book.
        places: list[tuple[_Map, str, str | None]] = [(spec, where, None)] + [
            (item, f"{where}.steps[{index}]", names[index]) for index, item in enumerate(steps_node)
        ]
        for node, place, holdout_step in places:
            if "holdout" not in node:
                continue
            if priority == "transactional":
                raise self.fail(
                    node.lines["holdout"],
                    f"{place}: a transactional journey has no holdout; it is owed to the "
                    "customer (hold out engagement and marketing journeys)",
                )
            share = self.share(node["holdout"], node.lines["holdout"], f"{place}.holdout")
            if holdout_step is None:
                self.shares[name] = share
            else:
                self.step_shares[(name, holdout_step)] = share
        return JourneyRule(
            name=name,
            priority=Priority(priority.upper()),
            trigger=trigger,
            scope=scope,
            urgent=self.flag(spec.get("urgent", False), spec.lines.get("urgent"), "urgent"),
            steps=steps,
            conditions=self.conditions(spec.get("conditions", []), spec.lines.get("conditions")),
            exit_on=tuple(
                EventKind(self.choice(kind, line, "exit_on", _NAMES_OF_KINDS))
                for kind, line in self.items(spec.get("exit_on", []), spec.lines.get("exit_on"))
            ),
            quiet_for=quiet_for,
        )

    def step(self, journey: str, index: int, body: Any, line: int) -> StepRule:
        where = f"journeys.{journey}.steps[{index}]"
        keys = {
            "name",
            "delay",
            "channels",
            "template",
            "conditions",
            "validity",
            "variables",
            "holdout",
            "digest",
        }
        spec = self.mapping(body, line, where, keys)
        for required in ("name", "channels", "validity"):
            if required not in spec:
                raise self.fail(spec.line, f"{where}: `{required}:` is missing")
        name = self.text(spec["name"], spec.lines["name"], "name")
        if not _NAME.fullmatch(name):
            raise self.fail(
                spec.lines["name"], f"step name {name!r}: use lower_case_with_underscores"
            )
        channels = tuple(
            Channel(self.choice(c, at, "channel", [ch.lower() for ch in Channel]).upper())
            for c, at in self.items(spec["channels"], spec.lines["channels"])
        )
        if not channels:
            raise self.fail(spec.lines["channels"], f"{where}: list at least one channel")
        if len(set(channels)) != len(channels):
            raise self.fail(spec.lines["channels"], f"{where}: a channel is listed twice")
        delay = self.duration(spec.get("delay", "0s"), spec.lines.get("delay"), "delay")
        validity = self.duration(spec["validity"], spec.lines["validity"], "validity")
        if validity <= timedelta(0):
            raise self.fail(spec.lines["validity"], "validity must be longer than 0")
        variables = spec.get("variables", _Map())
        if not isinstance(variables, dict) or not all(
            isinstance(v, str | int | float) for v in variables.values()
        ):
            raise self.fail(spec.lines.get("variables"), "variables must map names to text")
        digest = None
        if "digest" in spec:
            digest = self.digest(spec["digest"], spec.lines["digest"], where, validity)
        return StepRule(
            name=name,
            delay=delay,
            channels=channels,
            template=self.text(
                spec.get("template", f"{journey}.{name}"), spec.lines.get("template"), "template"
            ),
            conditions=self.conditions(spec.get("conditions", []), spec.lines.get("conditions")),
            validity=validity,
            variables=tuple(sorted((str(k), str(v)) for k, v in variables.items())),
            digest=digest,
            line=spec.line,
        )

    def digest(self, node: Any, line: int | None, where: str, validity: timedelta) -> Digest:
        """``digest: {window: 2h, key: customer}``: one message for what comes due together."""
        spec = self.mapping(node, line, f"{where}.digest", {"window", "key"})
        if "window" not in spec:
            raise self.fail(spec.line, f"{where}.digest needs `window:` (like 2h or 1d)")
        window = self.duration(spec["window"], spec.lines["window"], "digest window")
        if window <= timedelta(0):
            raise self.fail(spec.lines["window"], "a digest window must be longer than 0")
        if window >= validity:
            raise self.fail(
                spec.lines["window"],
                f"{where}: the digest window ({spec['window']}) must be shorter than the step's "
                "validity, or what it holds would expire while it waits",
            )
        key = self.choice(spec.get("key", "customer"), spec.lines.get("key"), "digest key",
                          ["customer", "order"])  # fmt: skip
        return Digest(window, key)

    def conditions(self, node: Any, line: int | None) -> tuple[Condition, ...]:
        found = []
        for item, at in self.items(node, line):
            if isinstance(item, dict):
                if len(item) != 1:
                    raise self.fail(at, "write a condition with a number as `{name: number}`")
                ((name, value),) = item.items()
            else:
                name, value = item, None
            name = self.choice(name, at, "condition", list(CONDITIONS))
            if CONDITIONS[name].takes_rating:
                if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
                    raise self.fail(at, f"{name} takes a rating from 1 to 5, like `{name}: 2`")
            elif value is not None:
                raise self.fail(at, f"{name} takes no value")
            found.append(Condition(name, value))
        return tuple(found)

    def holdouts(self, node: Any, line: int | None) -> Holdouts:
        """``holdouts: {key: text, global: 5%}``, with the journeys' and steps' own shares."""
        spec = self.mapping(_Map() if node is None else node, line, "holdouts", {"key", "global"})
        key = self.text(spec.get("key", DEFAULT_KEY), spec.lines.get("key"), "holdouts.key")
        share = 0
        if "global" in spec:
            share = self.share(spec["global"], spec.lines["global"], "holdouts.global")
        return Holdouts(key, share, dict(self.shares), dict(self.step_shares))

    def exits(self, node: Any, line: int | None) -> dict[EventKind, str]:
        spec = self.mapping(node, line, "exits", set(_NAMES_OF_KINDS))
        return {
            EventKind(kind): self.choice(reach, spec.lines[kind], f"exits.{kind}", list(EXIT_REACH))
            for kind, reach in spec.items()
        }

    def caps(self, node: Any, line: int | None) -> tuple[FrequencyCap, ...]:
        caps = []
        for item, at in self.items(node, line):
            spec = self.mapping(item, at, "a frequency cap", {"max", "within"})
            limit = spec.get("max")
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise self.fail(at, "a frequency cap needs `max:` (a whole number, at least 1)")
            if "within" not in spec:
                raise self.fail(at, "a frequency cap needs `within:` (like 24h or 7d)")
            within = self.duration(spec["within"], spec.lines["within"], "within")
            caps.append(FrequencyCap(limit, within))
        return tuple(caps)

    def quiet_hold(self, node: Any, line: int | None) -> Mapping[Priority, frozenset[Channel]]:
        """``quiet_hours_hold: {transactional: [sms, ...], engagement: [...], ...}``: which
        channels wait out quiet hours, per priority; a priority not listed keeps the default."""
        hold = dict(DEFAULT_QUIET_CHANNELS)
        if node is None:
            return hold
        names = {p.value.lower(): p for p in Priority}
        spec = self.mapping(node, line, "quiet_hours_hold", set(names))
        for key, priority in names.items():
            if key not in spec:
                continue
            at = spec.lines[key]
            channels = frozenset(
                Channel(self.choice(c, c_at, "channel", [ch.lower() for ch in Channel]).upper())
                for c, c_at in self.items(spec[key], at)
            )
            never = sorted(c.value.lower() for c in channels & NEVER_HELD)
            if never:
                raise self.fail(
                    at,
                    f"quiet_hours_hold.{key}: {', '.join(never)} never wait (in-app rings nobody, "
                    "the webhook reaches the support team); list only email, sms, whatsapp, push",
                )
            hold[priority] = channels
        return hold

    def quiet_hours(self, node: Any, line: int | None) -> QuietHours:
        if node is None:
            return QuietHours(21 * 60, 8 * 60)
        spec = self.mapping(node, line, "quiet_hours", {"start", "end"})
        start = self.clock(spec.get("start"), spec.lines.get("start", spec.line), "start")
        end = self.clock(spec.get("end"), spec.lines.get("end", spec.line), "end")
        if start == end:
            raise self.fail(spec.line, "quiet_hours start and end are the same time")
        return QuietHours(start, end)

    # -- primitives ------------------------------------------------------------------------

    def mapping(self, node: Any, line: int | None, where: str, keys: set[str]) -> _Map:
        if not isinstance(node, _Map):
            raise self.fail(getattr(node, "line", line), f"{where} must be a mapping of keys")
        for key in node:
            if key not in keys:
                close = difflib.get_close_matches(key, sorted(keys), n=1)
                hint = (
                    f"; did you mean {close[0]!r}?"
                    if close
                    else f"; known: {', '.join(sorted(keys))}"
                )
                raise self.fail(node.lines[key], f"{where}: unknown key {key!r}{hint}")
        return node

    def items(self, node: Any, line: int | None) -> list[tuple[Any, int | None]]:
        if node is None or (isinstance(node, list) and not node):
            return []
        if not isinstance(node, _List):
            raise self.fail(line, f"expected a list, like [a, b], got {node!r}")
        return list(zip(node, node.lines, strict=True))

    def choice(self, value: Any, line: int | None, what: str, allowed: list[str]) -> str:
        if not isinstance(value, str) or value not in allowed:
            close = difflib.get_close_matches(str(value), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"one of {', '.join(allowed)}"
            raise self.fail(line, f"{what} {value!r} is not known; {hint}")
        return value

    def duration(self, value: Any, line: int | None, what: str) -> timedelta:
        found = parse_duration(str(value)) if isinstance(value, str | int) else None
        if found is None:
            raise self.fail(line, f"{what} {value!r} is not a duration like 30m, 48h, 1d or 2w")
        return found

    def share(self, value: Any, line: int | None, what: str) -> int:
        """A share of customers like ``10%`` or ``2.5%``, in basis points, under 100%."""
        match = _SHARE.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise self.fail(line, f"{what} {value!r} is not a share like 10% or 2.5%")
        share = round(float(match.group(1)) * 100)
        if share >= BASIS_POINTS:
            raise self.fail(line, f"{what} must be under 100% (to send none, use enabled: false)")
        return share

    def clock(self, value: Any, line: int | None, what: str) -> int:
        match = _CLOCK.fullmatch(str(value)) if isinstance(value, str) else None
        if match is None:
            raise self.fail(line, f'quiet_hours {what} {value!r} is not a time like "21:00"')
        return int(match.group(1)) * 60 + int(match.group(2))

    def flag(self, value: Any, line: int | None, what: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(line, f"{what} must be true or false")
        return value

    def text(self, value: Any, line: int | None, what: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(line, f"{what} must be non-empty text")
        return value
