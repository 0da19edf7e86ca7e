"""Reading an export's bytes as text without guessing: its encoding, line by line, and its
physical lines (what reconciliation counts)."""

from __future__ import annotations

import re


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding) of a whole file, strictly. Brands' exports come as UTF-8 (often with a
    BOM) or GBK. `encoding` pins it (a mapping's ``encoding:``). Raises ValueError when the bytes
    are not that (or, unpinned, neither UTF-8 nor GB18030). See `decode_lines` for the lenient,
    line-by-line reading ingestion uses.
    """
    if encoding is not None:
        try:
            return data.decode(encoding).removeprefix("\ufeff"), encoding
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"not valid {encoding} at byte {exc.start} ({exc.reason}); "
                "drop the fixed encoding to let it be detected"
            ) from exc
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # GB18030 is a superset of GBK and GB2312; strict, so garbage still fails loudly.
        return data.decode("gb18030"), "gb18030"


_EOL = re.compile(r"\r\n|\r|\n")
_EOL_BYTES = re.compile(rb"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """A text's physical lines: split at CRLF, CR or LF (old Mac exports end lines with CR),
    but not at U+2028 and friends, which are text. A final line break ends the last line."""
    lines = _EOL.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _line_bytes(data: bytes) -> list[bytes]:
    lines = _EOL_BYTES.split(data)
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


_NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "gb18030": "GB18030"}


def decode_lines(data: bytes, encoding: str | None = None) -> tuple[list[str], str, dict[int, str]]:
    """(physical lines, encoding, {line number: why}) of a text export, never guessing.

    A line whose bytes are neither UTF-8 nor GB18030 (or not the pinned `encoding`), and, in a
    file that mixes encodings line by line (a UTF-8 export with one GBK line pasted in), every
    line in the minority encoding, is kept (decoded as well as it can be, for quarantine's `raw`)
    and reported: the parser rejects exactly those lines with the reason, instead of reading
    the whole file as GB18030 and storing mojibake (张伟 as 寮犱紵).
    """
    if encoding is not None:
        try:
            return split_lines(decode(data, encoding)[0]), encoding, {}
        except ValueError:
            pass
        candidates = [encoding]
    elif data.startswith(b"\xef\xbb\xbf"):
        data, candidates, encoding = data[3:], ["utf-8"], "utf-8-sig"
    else:
        try:
            return split_lines(data.decode("utf-8")), "utf-8", {}
        except UnicodeDecodeError:
            candidates = ["utf-8", "gb18030"]
    raw_lines = _line_bytes(data)
    kinds: list[str | None] = []  # per line: the first candidate that decodes it (None: none)
    for chunk in raw_lines:
        if chunk.isascii():
            kinds.append("ascii")
            continue
        for candidate in candidates:
            try:
                chunk.decode(candidate)
            except UnicodeDecodeError:
                continue
            kinds.append(candidate)
            break
        else:
            kinds.append(None)
    if encoding is None:
        counts = {c: kinds.count(c) for c in candidates}
        # Unpinned: UTF-8 unless no line is; a tie goes to the header's encoding.
        utf8, gbk = counts["utf-8"], counts["gb18030"]
        header_gbk = bool(kinds) and kinds[0] == "gb18030"
        encoding = "gb18030" if utf8 == 0 or gbk > utf8 or (gbk == utf8 and header_gbk) else "utf-8"
    main = "utf-8" if encoding == "utf-8-sig" else encoding
    lines: list[str] = []
    bad: dict[int, str] = {}
    for number, (chunk, kind) in enumerate(zip(raw_lines, kinds, strict=True), start=1):
        if kind in ("ascii", main):
            lines.append(chunk.decode(main))
        elif kind is None:
            lines.append(chunk.decode(main, errors="replace"))
            at = _first_undecodable(chunk, main)
            bad[number] = (
                f"undecodable bytes at column {at + 1} ({chunk[at : at + 4].hex(' ')}): the "
                f"line is neither {' nor '.join(_NAMES.get(c, c.upper()) for c in candidates)}"
            )
        else:
            lines.append(chunk.decode(kind))
            bad[number] = (
                f"mixed encodings: this line is {_NAMES.get(kind, kind)} while the file is "
                f"{_NAMES.get(main, main.upper())}; re-export the file in one encoding (the "
                "line is not guessed)"
            )
    return lines, encoding, bad


def _first_undecodable(chunk: bytes, encoding: str) -> int:
    try:
        chunk.decode(encoding)
    except UnicodeDecodeError as exc:
        return exc.start
    return 0
