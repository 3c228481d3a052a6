"""Situation and instruction templates: Jinja2 in a sandbox, with bounded output, work and memory.

A session with `render_templates: true` has its situation and its agent's instructions rendered as
Jinja2 templates with `agent`, `user` and `session` as variables (as Julep does). The templates come
from API callers, so they run in jinja's sandbox (no `__class__`, no `__globals__`, no mutation of
the variables) with StrictUndefined (`{{ user.nmae }}` fails instead of rendering nothing), and
the ways we know for a template to hang the process or exhaust its memory are bounded:

- output: rendering streams and stops past MAX_RENDERED_BYTES;
- time: a watchdog raises an exception in the rendering thread at RENDER_SECONDS, which stops any
  loop written in the template (they all run as Python code);
- single operations that run as one uninterruptible C call (`'x' * 10**9`, `2 ** (10**8)`,
  `s.replace('', s)`, `'x'|center(10**9)`, printing or comparing a list that holds another list a
  million times) are estimated before they run: no value a template builds (with an operator, a
  literal, `~`, a filter, a call or a block) may be larger than MAX_VALUE_SIZE; methods of
  builtin types are limited to a safe few; `range()` yields at most MAX_RANGE items;
- accumulation: all the strings and containers one rendering builds count against
  MAX_BUILT_BYTES, so a loop cannot pile up memory before the watchdog stops it.

jinja2 is imported on first use, never at import time: most requests never render a template and
Lambda cold starts pay for every import.
"""

from __future__ import annotations

import functools
import math
import numbers
import re
import threading
from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from typing import Any

from chalicelib.shared import errors

MAX_RENDERED_BYTES = 64 * 1024  # one rendered field (UTF-8), the size of a stored situation
RENDER_SECONDS = 1.0  # wall-clock time to render one field
MAX_RANGE = 1000  # items one range() yields (jinja's own sandbox allows 100,000)
MAX_VALUE_SIZE = 1024 * 1024  # one value a template builds, in characters as printed
MAX_BUILT_BYTES = 32 * 1024 * 1024  # everything one rendering builds, together (roughly bytes)
MAX_INT_BITS = 4096  # an integer a template computes (about 1,200 digits)
MAX_DEPTH = 32  # nesting of a value a template builds

_CONTAINER_BYTES = 64  # what one more list, tuple or dict costs besides its items
_ITEM_BYTES = 8  # one reference in a container


def check(source: str, field: str) -> None:
    """Refuse a template that does not compile (at write time; nothing is rendered): a syntax
    error, or an unknown filter or test. 422 naming `field`."""
    try:
        _compile(source)
    except Exception as error:
        reason = _reason(error)
        raise errors.ValidationFailed(
            f"{field}: {reason}", details=[{"field": field, "message": reason, "type": "template"}]
        ) from None


def render(source: str, variables: dict[str, Any], field: str) -> str:
    """`source` rendered with `variables` in the sandbox, within every bound of this module; any
    failure is a 422 TemplateFailed whose message names `field` and the reason. Any thread."""
    try:
        template = _compile(source)
    except Exception as error:
        raise errors.TemplateFailed(f"{field}: {_reason(error)}") from None
    _active.rendering = _Rendering(variables)
    try:
        with _Deadline(RENDER_SECONDS):
            return _bounded_output(template.generate(**variables))
    except _TimeUp:
        raise errors.TemplateFailed(
            f"{field}: rendering took longer than the time limit of {RENDER_SECONDS:g} s"
        ) from None
    except Exception as error:
        raise errors.TemplateFailed(f"{field}: {_reason(error)}") from None
    finally:
        _active.rendering = None


def _bounded_output(chunks: Iterator[str]) -> str:
    parts: list[str] = []
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk.encode("utf-8")) if len(chunk) <= MAX_RENDERED_BYTES else len(chunk)
            if size > MAX_RENDERED_BYTES:
                raise _Refused(f"the rendered text is longer than {MAX_RENDERED_BYTES} bytes")
            parts.append(chunk)
    finally:
        chunks.close()  # stops the template where it is
    return "".join(parts)


# --- what one rendering may build --------------------------------------------------------------


class _Refused(Exception):
    """A bound of this module; its message is the reason the caller sees."""


class _Rendering:
    """The rendering running in this thread: its variables (to name them in messages) and what it
    has built so far."""

    def __init__(self, variables: dict[str, Any]) -> None:
        self.variables = variables
        self.built = 0


_active = threading.local()  # .rendering: the _Rendering of this thread, or None


def _charge(size: int) -> None:
    rendering = getattr(_active, "rendering", None)
    if rendering is None:
        return  # compiling: constant folding builds only what the source spells out
    rendering.built += size
    if rendering.built > MAX_BUILT_BYTES:
        raise _Refused(f"the template builds more than {MAX_BUILT_BYTES} bytes of values in all")


def _size(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """Roughly how many characters `value` prints as, counting a shared part each time it is
    reached (as printing, comparing and hashing do). Stops counting once past `limit`, so the cost
    is bounded however the value was built; refuses values nested deeper than MAX_DEPTH."""
    from jinja2.utils import Namespace

    total = 0
    pending = [(value, 0)]
    while pending and total <= limit:
        item, depth = pending.pop()
        if isinstance(item, (str, bytes)):
            total += len(item) + 2
            continue
        if isinstance(item, int):
            total += item.bit_length() // 3 + 1
            continue
        if isinstance(item, Namespace):
            item = object.__getattribute__(item, "_Namespace__attrs")
        if isinstance(item, dict):
            children: Any = [part for pair in item.items() for part in pair]
        elif isinstance(item, (list, tuple, set, frozenset, KeysView, ValuesView, ItemsView)):
            children = item
        else:
            total += 4  # None, floats, jinja's own objects: short when printed
            continue
        if depth >= MAX_DEPTH:
            raise _Refused(f"a value nests deeper than {MAX_DEPTH} levels")
        total += 2 * len(children) + 2
        pending.extend((child, depth + 1) for child in children)
    return total


def _total_size(values: Any, limit: int = MAX_VALUE_SIZE) -> int:
    total = 0
    for value in values:
        total += len(value) + 2 if isinstance(value, str) else _size(value, limit - total)
        if total > limit:
            break
    return total


def _require(size: int, what: str) -> None:
    if size > MAX_VALUE_SIZE:
        raise _Refused(f"{what} would be larger than {MAX_VALUE_SIZE} characters")


def _built(value: Any, what: str) -> Any:
    """Admit a value the template has just built, or refuse it; charge what it took."""
    from jinja2.utils import Namespace

    if isinstance(value, str):
        _require(len(value), what)
        _charge_sequence(value, len(value))
    elif isinstance(value, (list, tuple, dict, Namespace)):
        _require(_size(value), what)
        _charge_sequence(value, 1 if isinstance(value, Namespace) else len(value))
    return value


def _charge_sequence(sample: Any, length: int) -> None:
    """Charge a new string, or a new container of `length` items, like `sample`."""
    _charge(length if isinstance(sample, str) else _CONTAINER_BYTES + _ITEM_BYTES * length)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `left <operator> right` before computing it when the result would be too big."""
    sequences = (str, list, tuple)
    if operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
                raise _Refused(f"the result of '*' would have more than {MAX_INT_BITS} bits")
            return
        sequence, times = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(sequence, sequences) and isinstance(times, int) and times > 0:
            # A string is as long as it prints; a list prints its items, shared ones repeatedly.
            size = len(sequence) if isinstance(sequence, str) else _size(sequence, MAX_VALUE_SIZE // times)
            _require(size * times, "the result of '*'")
            _charge_sequence(sequence, len(sequence) * times)
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if right > MAX_INT_BITS or right * math.log2(abs(left)) > MAX_INT_BITS:
                raise _Refused(f"the result of '**' would have more than {MAX_INT_BITS} bits")
    elif operator == "+":
        if isinstance(left, sequences) and isinstance(right, sequences):
            _require(_total_size((left, right)), "the result of '+'")
            _charge_sequence(left, len(left) + len(right))
    elif operator == "%" and isinstance(left, str):
        _require(_format_size(left, _format_arguments(right)), "the result of '%'")


def _format_arguments(arguments: Any) -> list[Any]:
    if isinstance(arguments, tuple):
        return list(arguments)
    return list(arguments.values()) if isinstance(arguments, dict) else [arguments]


# A width or precision in a %-format or a {}-format field, and a width taken from the arguments.
_PERCENT_WIDTHS = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?")
_BRACE_FIELDS = re.compile(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}")


def _format_size(template: str, arguments: list[Any]) -> int:
    """An upper bound of what formatting `arguments` into `template` (%-style or str.format)
    prints: every field may print the biggest argument, padded to the widest width."""
    widths = [
        int(number)
        for match in _PERCENT_WIDTHS.finditer(template)
        for number in match.groups()
        if number and number.isdigit()
    ]
    for field in _BRACE_FIELDS.findall(template):
        spec = field.partition(":")[2]
        widths += [int(number) for number in re.findall(r"\d+", spec)]
        if "{" in spec:
            widths += [_int(argument) for argument in arguments]
    if "*" in template:
        widths += [_int(argument) for argument in arguments]
    fields = template.count("%") + template.count("{")
    biggest = max((_size(argument) for argument in arguments), default=0)
    return len(template) + fields * (biggest + max(widths, default=0))


def _replace_size(text: str, old: str, new: str, count: int = -1) -> int:
    found = len(text) + 1 if old == "" else text.count(old)
    if count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _join_size(separator: str, items: list[Any]) -> int:
    return _total_size(items) + len(separator) * max(len(items) - 1, 0)


def _check_str_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a call of a str method that would build too big a string; returns the arguments to
    call it with (an iterator given to join is read into a list first, to measure it)."""
    text = getattr(method, "__self__", None)
    if not isinstance(text, str):
        return args
    name = getattr(method, "__name__", "")
    try:
        if name == "replace":
            size = _replace_size(text, *args, **kwargs)
        elif name == "join" and args:
            args = (list(args[0]), *args[1:])
            size = _join_size(text, args[0])
        elif name == "format":
            size = _format_size(text, [*args, *kwargs.values()])
        elif name == "format_map" and args:
            size = _format_size(text, _format_arguments(args[0]))
        else:
            return args
    except TypeError:
        return args  # arguments the method itself refuses: let it say so
    _require(size, f"the result of str.{name}()")
    return args


# What jinja's filters that can multiply their input would print, estimated from their arguments
# (same signatures as the filters, without the environment or eval context some are passed).
def _center_size(value: Any, width: int = 80) -> int:
    return max(_size(value), _int(width))


def _indent_size(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> int:
    per_line = len(width) if isinstance(width, str) else _int(width)
    return _size(s) + (str(s).count("\n") + 1) * per_line


def _wordwrap_size(
    s: Any, width: int = 79, break_long_words: bool = True, wrapstring: str | None = None, break_on_hyphens: bool = True
) -> int:
    text = str(s)
    lines = 2 * len(text) // max(_int(width), 1) + text.count("\n") + 1
    return len(text) + lines * len(wrapstring or "\n")


def _format_filter_size(value: Any, *args: Any, **kwargs: Any) -> int:
    return _format_size(str(value), list(kwargs.values()) or list(args))


def _replace_filter_size(s: Any, old: Any, new: Any, count: int | None = None) -> int:
    return _replace_size(str(s), str(old), str(new), -1 if count is None else count)


def _join_filter_size(value: list[Any], d: Any = "", attribute: Any = None) -> int:
    return _join_size(str(d), value)


def _sum_filter_size(iterable: Any, attribute: Any = None, start: Any = 0) -> int:
    if not isinstance(start, numbers.Number):
        raise _Refused("the sum filter adds numbers only")  # summing lists copies them quadratically
    return 0


def _batch_size(value: Any, linecount: int, fill_with: Any = None) -> int:
    return 0 if fill_with is None else _int(linecount) * (_size(fill_with) + 2)


def _slice_size(value: Any, slices: int, fill_with: Any = None) -> int:
    return _int(slices) * (_size(fill_with) + 4)


def _tojson_size(value: Any, indent: int | None = None) -> int:
    return _size(value) * (1 + min(_int(indent), MAX_VALUE_SIZE))


_FILTER_SIZES = {
    "center": _center_size,
    "indent": _indent_size,
    "wordwrap": _wordwrap_size,
    "format": _format_filter_size,
    "replace": _replace_filter_size,
    "join": _join_filter_size,
    "sum": _sum_filter_size,
    "batch": _batch_size,
    "slice": _slice_size,
    "tojson": _tojson_size,
}


def _guard_filter(name: str, function: Any) -> Any:
    """`function` (a jinja filter) refusing to build too much: estimated before when it can
    multiply its input, and its result checked after."""
    estimate = _FILTER_SIZES.get(name)
    passed = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0  # env or eval ctx

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if name == "join" and len(args) > passed and isinstance(args[passed], Iterator):
            args = (*args[:passed], list(args[passed]), *args[passed + 1 :])  # to measure it first
        if estimate is not None:
            try:
                size = estimate(*args[passed:], **kwargs)
            except TypeError:
                size = 0  # arguments the filter itself refuses: let it say so
            _require(size, f"the result of the {name!r} filter")
        return _built(function(*args, **kwargs), f"the result of the {name!r} filter")

    return guarded


def _bounded_range(*args: int) -> range:
    """range() for templates: jinja's sandbox allows 100,000 items, far more than a prompt needs."""
    items = range(*args)
    try:
        too_many = len(items) > MAX_RANGE
    except OverflowError:
        too_many = True
    if too_many:
        raise _Refused(f"range() is limited to {MAX_RANGE} items")
    return items


# Methods of builtin types a template may use: the rest can allocate without bound
# ('x'.ljust(10**9), (1).to_bytes(10**9, 'big'), s.translate(...), ...).
_METHODS = (
    (
        str,
        frozenset(
            """capitalize casefold count endswith find index isalnum isalpha isdecimal
        isdigit islower isnumeric isspace istitle isupper join lower lstrip partition removeprefix
        removesuffix replace rfind rindex rpartition rsplit rstrip split splitlines startswith
        strip swapcase title upper""".split()
        ),
    ),  # format and format_map: the sandbox wraps them
    (dict, frozenset({"get", "items", "keys", "values"})),
    ((list, tuple), frozenset({"count", "index"})),
    ((numbers.Number, bytes, bytearray, set, frozenset), frozenset()),
)


# --- the environment ---------------------------------------------------------------------------


@functools.cache
def _environment() -> Any:
    """The one sandboxed environment of this process, built on first use."""
    from jinja2 import StrictUndefined
    from jinja2.compiler import CodeGenerator
    from jinja2.runtime import markup_join, str_join
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.utils import Namespace as JinjaNamespace

    class CheckedCodeGenerator(CodeGenerator):
        """Compiles container literals and `~` through the environment, so that what they build
        is checked as well (the sandbox sees operators, calls and attributes, not these)."""

        def visit_List(self, node: Any, frame: Any) -> None:
            self._checked(super().visit_List, node, frame)

        def visit_Dict(self, node: Any, frame: Any) -> None:
            self._checked(super().visit_Dict, node, frame)

        def visit_Tuple(self, node: Any, frame: Any) -> None:
            if node.ctx == "load":  # not the targets of `{% for a, b in ... %}` and `{% set a, b = ... %}`
                self._checked(super().visit_Tuple, node, frame)
            else:
                super().visit_Tuple(node, frame)

        def _checked(self, visit: Any, node: Any, frame: Any) -> None:
            self.write("environment.built_literal(")
            visit(node, frame)
            self.write(")")

        def visit_Concat(self, node: Any, frame: Any) -> None:
            self.write("environment.concat_operands(context, (")
            for operand in node.nodes:
                self.visit(operand, frame)
                self.write(", ")
            self.write("))")

    class Namespace(JinjaNamespace):
        """namespace(), checked on every `{% set ns.attr = ... %}` (its only way to grow)."""

        def __setitem__(self, name: str, value: Any) -> None:
            super().__setitem__(name, value)
            _require(_size(self), "a namespace")

    class Undefined(StrictUndefined):
        """StrictUndefined naming the variable: "'user' has no attribute 'nmae'" rather than
        "'dict object' has no attribute 'nmae'"."""

        __slots__ = ()

        @property
        def _undefined_message(self) -> str:
            path = _path_of(self._undefined_obj)
            if self._undefined_hint is not None or path is None:
                return super()._undefined_message
            what = "attribute" if isinstance(self._undefined_name, str) else "element"
            return f"{path!r} has no {what} {self._undefined_name!r}"

    class Environment(ImmutableSandboxedEnvironment):
        code_generator_class = CheckedCodeGenerator
        intercepted_binops = frozenset({"*", "**", "+", "%"})

        def __init__(self) -> None:
            # Julep's settings (autoescape off: prompt text, not HTML), with StrictUndefined.
            super().__init__(
                autoescape=False, trim_blocks=True, lstrip_blocks=True, undefined=Undefined, auto_reload=False
            )
            del self.globals["lipsum"]  # lorem ipsum: no use in a prompt, and unbounded
            self.globals.update(range=_bounded_range, namespace=Namespace)
            # urlize: HTML only, and it repeats its arguments once per link found
            self.filters = {
                name: _guard_filter(name, function) for name, function in self.filters.items() if name != "urlize"
            }

        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
            for kinds, allowed in _METHODS:
                if isinstance(obj, kinds):
                    return attr in allowed
            return super().is_safe_attribute(obj, attr, value)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
            method = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format in a function
            args = _check_str_method(method, args, kwargs)
            name = getattr(method, "__name__", None)
            what = f"the result of {name}()" if isinstance(name, str) else "the result of a call"
            return _built(super().call(context, obj, *args, **kwargs), what)

        def getitem(self, obj: Any, argument: Any) -> Any:
            value = super().getitem(obj, argument)
            return _built(value, "a slice") if isinstance(argument, slice) else value

        def concat(self, parts: Any) -> str:  # type: ignore[override]
            """The output of a macro, a `{% set %}` block, a `{% filter %}` block or a call block."""
            parts = parts if isinstance(parts, list) else list(parts)
            _require(sum(map(len, parts)), "the output of a block or macro")
            return _built("".join(parts), "the output of a block or macro")

        def concat_operands(self, context: Any, operands: tuple[Any, ...]) -> str:
            """`a ~ b ~ c`."""
            _require(_total_size(operands), "the result of '~'")
            join = markup_join if context.eval_ctx.autoescape else str_join
            return _built(join(operands), "the result of '~'")

        def built_literal(self, value: Any) -> Any:
            return _built(value, "a literal")

    return Environment()


def _compile(source: str) -> Any:
    try:
        return _environment().from_string(source)
    except (RecursionError, SyntaxError):  # Python's limits on the code a template compiles to
        raise _Refused("the template nests blocks, loops or brackets too deeply") from None


def _path_of(target: Any) -> str | None:
    """Where `target` (a dict or list) sits in the variables of this thread's rendering, as the
    template would spell it (`session.metadata`), for messages."""
    rendering = getattr(_active, "rendering", None)
    if rendering is None or not isinstance(target, (dict, list)):
        return None
    pending = list(rendering.variables.items())
    for path, value in pending:  # breadth first; the list grows as it is read
        if value is target:
            return path
        if len(pending) > 10_000:
            break
        if isinstance(value, dict):
            pending += [(f"{path}.{key}", item) for key, item in value.items() if isinstance(key, str)]
        elif isinstance(value, list):
            pending += [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    return None


# --- the deadline ------------------------------------------------------------------------------


class _TimeUp(BaseException):
    """Raised in the rendering thread at the deadline. A BaseException, so that no `except
    Exception` inside jinja can swallow it."""


class _Deadline:
    """Raises _TimeUp in the current thread if it is still inside the `with` block after
    `seconds`. Loops in a template run as Python code, so an asynchronous exception stops them
    (PyThreadState_SetAsyncExc); it works in any thread, unlike signal.alarm. The lock and the
    `running` flag make sure the watchdog can never fire after the block has finished."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        import ctypes  # here, not in the watchdog: nothing to import once the deadline runs

        self._set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
        self._thread = ctypes.c_ulong(threading.get_ident())
        self._exception = ctypes.py_object(_TimeUp)
        self._lock = threading.Lock()
        self._running = True
        self._fired = False
        self._timer = threading.Timer(self.seconds, self._interrupt)
        self._timer.daemon = True
        self._timer.start()

    def _interrupt(self) -> None:
        with self._lock:
            if self._running:
                self._fired = True
                self._set_async_exc(self._thread, self._exception)

    def __exit__(self, *exc_info: Any) -> None:
        self._timer.cancel()
        with self._lock:
            self._running = False
            if self._fired:
                self._set_async_exc(self._thread, None)  # withdraw it if not raised yet
        if self._fired:
            raise _TimeUp


# --- messages ----------------------------------------------------------------------------------

_ADDRESS = re.compile(r"\s*at 0x[0-9a-fA-F]+")
_MODULE_PREFIX = re.compile(r"\b(?:jinja2|markupsafe|chalicelib|builtins)(?:\.\w+)*\.(?=\w)")
_PATH = re.compile(r"(?:[A-Za-z]:)?[\\/][^\s'\"]*\.py\b")


def _reason(error: BaseException) -> str:
    """What went wrong, for the caller: the line of the template when known, and the message
    without anything internal (no traceback, file, module of ours or memory address)."""
    from jinja2 import TemplateSyntaxError

    if isinstance(error, TemplateSyntaxError):
        return f"line {error.lineno}: {_clean(error.message or 'syntax error')}"
    if isinstance(error, RecursionError):
        message = "recursion too deep (a macro or loop that calls itself without end?)"
    elif isinstance(error, MemoryError):
        message = "out of memory"
    else:
        message = _clean(str(error)) or type(error).__name__
    line = _template_line(error)
    return f"line {line}: {message}" if line else message


def _template_line(error: BaseException) -> int | None:
    """The innermost template line in the traceback (jinja rewrites template frames to name
    `<template>` and the line of the source)."""
    line = None
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def _clean(message: str) -> str:
    message = message.strip().split("\n", 1)[0]
    message = _PATH.sub("<file>", _MODULE_PREFIX.sub("", _ADDRESS.sub("", message)))
    return message[:500]
