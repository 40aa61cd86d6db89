"""Cleaning remote command output for people: no terminal codes, redraws resolved, the tail kept, bounded."""

from __future__ import annotations

from pathlib import Path

from bot.core.output import OUTPUT_LIMIT, OutputTail, clean_output

# Captured from a real `pm2 restart all` (pm2 6, on a terminal, so coloured and with \r\n line ends).
PM2_RESTART_ALL = (Path(__file__).parent / "data" / "pm2_restart_all.ansi").read_text(encoding="utf-8")


def test_pm2_table_loses_its_colour_codes_and_keeps_its_text() -> None:
    assert "\x1b[" in PM2_RESTART_ALL  # the sample really is coloured
    cleaned = clean_output(PM2_RESTART_ALL, limit=10_000)
    assert "\x1b" not in cleaned
    assert "\r" not in cleaned
    assert "[39m" not in cleaned and "[1m" not in cleaned  # no half-stripped codes either
    lines = cleaned.splitlines()
    assert lines[0] == "Use --update-env to update environment variables"
    assert lines[1] == "[PM2] Applying action restartProcessId on app [all](ids: [ 0 ])"
    assert lines[2] == "[PM2] [poracle](0) ✓"
    assert lines[3].startswith("┌────┬") and lines[3].endswith("┐")
    assert lines[4].split("│")[1:4] == [" id ", " name       ", " namespace   "]
    row = [cell.strip() for cell in lines[6].split("│")[1:-1]]
    assert row[1] == "poracle" and row[4] == "fork" and row[8] == "online"
    assert lines[-1].startswith("host metrics | cpu: 0% | ram usage: 1.7%")
    # The table's box lines all have the same width once the codes are gone.
    assert len({len(line) for line in lines[3:8]}) == 1


def test_other_escape_sequences() -> None:
    raw = (
        "\x1b]0;window title\x07title gone\n"
        "\x1b]8;;http://example.invalid\x1b\\link\x1b]8;;\x1b\\ text\n"
        "\x1b[2K\x1b[1Gcursor moves gone\n"
        "\x1b[?25lhidden cursor\x1b[?25h\n"
        "\x1b(Bcharset\x1b(B\x1b[m\x1bM\n"
        "bell\x07 and backspace\x08 and nul\x00\n"
        "\x9b31mC1 controls\x85 too\x9b0m\n"
    )
    assert clean_output(raw).splitlines() == [
        "title gone",
        "link text",
        "cursor moves gone",
        "hidden cursor",
        "charset",
        "bell and backspace and nul",
        "31mC1 controls too0m",
    ]


def test_carriage_return_redraws_show_the_last_state() -> None:
    raw = "Downloading  10%\rDownloading  55%\rDownloading 100%\nDone\n"
    assert clean_output(raw) == "Downloading 100%\nDone"


def test_a_pty_doubled_carriage_return_keeps_the_line() -> None:
    # Through a pty a program's own "\r\n" arrives as "\r\r\n"; a trailing \r erases nothing.
    assert clean_output("first\r\r\nsecond\r\r\n") == "first\nsecond"
    assert clean_output("50%\r100%\r") == "100%"
    assert clean_output("crlf line\r\nnext\r\n") == "crlf line\nnext"


def test_blank_edges_and_trailing_spaces_go_inner_blank_lines_stay() -> None:
    assert clean_output("\n\n  first   \n\nsecond\t \n\n\n") == "  first\n\nsecond"
    assert clean_output("") == ""
    assert clean_output("\x1b[32m\x1b[39m\r\n") == ""


def test_long_output_keeps_the_tail_cut_to_the_limit() -> None:
    raw = "".join(f"line {n:04d}\n" for n in range(1000)) + "Error: the end is where it matters\n"
    cleaned = clean_output(raw)
    assert len(cleaned) == OUTPUT_LIMIT
    assert cleaned.startswith("…\n")
    assert cleaned.endswith("line 0999\nError: the end is where it matters")
    assert "line 0000" not in cleaned

    short = clean_output(raw, limit=50)
    assert len(short) == 50
    assert short.endswith("Error: the end is where it matters")


def test_output_at_the_limit_is_not_cut() -> None:
    exact = "x" * OUTPUT_LIMIT
    assert clean_output(exact) == exact
    assert clean_output(exact + "y") == "…\n" + ("x" * (OUTPUT_LIMIT - 3)) + "y"


def test_the_limit_counts_cleaned_text_not_escape_codes() -> None:
    raw = "\x1b[32m" + "a" * 100 + "\x1b[39m"
    assert clean_output(raw, limit=100) == "a" * 100


def test_output_tail_is_bounded_and_keeps_the_end() -> None:
    tail = OutputTail(keep=100)
    for n in range(10_000):
        tail.feed(f"chunk {n}\n")
        assert len(tail.text) <= 100
    assert tail.text.endswith("chunk 9999\n")
    assert len(tail.text) == 100


def test_output_tail_with_one_huge_chunk() -> None:
    tail = OutputTail(keep=10)
    tail.feed("a" * 1_000_000 + "0123456789")
    assert tail.text == "0123456789"


def test_output_tail_default_keeps_more_than_is_shown() -> None:
    # The tail must hold at least what clean_output shows, or codes and redraws could starve it.
    tail = OutputTail()
    tail.feed("z" * 100_000)
    assert OUTPUT_LIMIT * 4 <= len(tail.text) <= 64 * 1024
