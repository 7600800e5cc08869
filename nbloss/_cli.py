"""What the command line's parsers share: the help layout and the checks of option values.

Every check runs while the arguments are parsed or right after, before any work: a bad
value ends in argparse's one-line ``error:`` and exit status 2, never in a traceback
halfway through a run.
"""

import argparse
import importlib.util
import math
import os
import tempfile


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option's help; descriptions and epilogs kept as written
    (their examples are laid out by hand). No "(default: None)" or "(default: False)": an
    option without a value or a flag says what it does when given."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _number(text, kind):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}")
    return value


def int_at_least(low):
    """An argparse type: an integer >= ``low``, written as 200, 1e3 or 1_000."""

    def parse(text):
        value = _number(text.replace("_", ""), "an integer")
        if value != int(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is below the minimum, {low}")
        return int(value)

    parse.__name__ = f"integer >= {low}"
    return parse


def float_in(low, high=math.inf, low_open=False, high_open=False):
    """An argparse type: a finite float in the interval from ``low`` to ``high``."""
    lo, hi = "(" if low_open else "[", ")" if high_open else "]"
    interval = f"{lo}{low:g}, {high:g}{hi}" if math.isfinite(high) else f"{lo}{low:g}, inf)"

    def parse(text):
        value = _number(text, "a number")
        if (value < low or (low_open and value == low) or value > high
                or (high_open and value == high)):
            raise argparse.ArgumentTypeError(f"{text!r} is outside {interval}")
        return value

    parse.__name__ = f"number in {interval}"
    return parse


def comma_list(allowed=None, item=str):
    """An argparse type: a comma-separated list, each item converted by ``item`` and, with
    ``allowed``, one of those; no item twice, none empty."""

    def parse(text):
        values = []
        for part in text.split(","):
            part = part.strip()
            if not part:
                raise argparse.ArgumentTypeError(f"empty item in {text!r}")
            value = item(part)
            if allowed is not None and value not in allowed:
                raise argparse.ArgumentTypeError(
                    f"unknown {part} (choose from {', '.join(allowed)})")
            if value in values:
                raise argparse.ArgumentTypeError(f"{part} given twice")
            values.append(value)
        return values

    parse.__name__ = "comma-separated list"
    return parse


def _writable(folder):
    """Whether a file can be created in ``folder``: tried, not inferred from permission
    bits (which say nothing for root, read-only mounts or /proc)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def check_output_file(parser, option, path):
    """``parser.error`` unless ``path`` can be written: its folder exists and takes new
    files, and it is not a folder itself."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        parser.error(f"{option} {path}: is a folder; name a file")
    if not os.path.isdir(folder):
        parser.error(f"{option} {path}: folder {os.path.dirname(path) or '.'} does not exist")
    if not _writable(folder):
        parser.error(f"{option} {path}: cannot write into {os.path.dirname(path) or '.'}")


def check_output_folder(parser, option, path):
    """``parser.error`` unless ``path`` is a folder that takes new files, creating it
    where it is missing but its parent exists (a missing parent is more likely a typo)."""
    if os.path.exists(path) and not os.path.isdir(path):
        parser.error(f"{option} {path}: exists and is not a folder")
    if not os.path.exists(path):
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            parser.error(f"{option} {path}: its parent folder does not exist (only the last "
                         "folder of the path is created)")
        try:
            os.mkdir(path)
        except OSError as exc:
            parser.error(f"{option} {path}: cannot create it ({exc.strerror})")
    if not _writable(path):
        parser.error(f"{option} {path}: cannot write into it")


def check_plot_file(parser, option, path):
    """``parser.error`` unless matplotlib is installed and can write ``path``: the folder
    exists and the file's suffix names a format matplotlib writes."""
    if importlib.util.find_spec("matplotlib") is None:
        parser.error(f"{option} needs matplotlib: pip install matplotlib (or 'nbloss[plot]')")
    check_output_file(parser, option, path)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    formats = FigureCanvasAgg.get_supported_filetypes()
    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    if suffix not in formats:
        parser.error(f"{option} {path}: name a file ending in one of "
                     + ", ".join("." + f for f in sorted(formats)))
