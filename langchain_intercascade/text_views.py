"""How untrusted text is read before it is screened: :func:`views`, its plain and decoded forms.

A poisoned strategy hides its words: zero-width and format characters between
letters, look-alike letters of other scripts, letters spaced apart, or the words
encoded (base64, hex, HTML entities, percent-encoding, escapes, rot13). The strategy filter
(:mod:`langchain_intercascade.guards`) matches its patterns against every view.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator

# Invisible letters that are not format characters (Hangul fillers, braille blank,
# combining grapheme joiner, Mongolian vowel separator).
_INVISIBLE = dict.fromkeys(map(ord, "\u115f\u1160\u3164\uffa0\u2800\u034f\u180e"))
# Look-alikes that NFKC keeps, as the Latin letter or bracket they pass for: Cyrillic,
# Greek, small capitals, Armenian, Cherokee; angle brackets and guillemets.
_CONFUSABLES = str.maketrans(
    dict(
        zip(
            "аеорсухіјѕԁһԛԝӏкмнтвьАВЕКМНОРСТХУІЈЅ"
            "αβεηικνορτυχωΑΒΕΗΙΚΜΝΟΡΤΧΥΖ"
            "ɪɢɴᴏʀᴇᴘᴠᴜꜱᴛᴄᴀʙᴅꜰʜᴊᴋʟᴍǫᴡʏᴢɡıօսᎥ"
            "\u27e8\u2329\u3008\u300a\u2039\u00ab\u276c\u276e\u2770\u29fc\u1438"
            "\u27e9\u232a\u3009\u300b\u203a\u00bb\u276d\u276f\u2771\u29fd\u1433",
            "aeopcyxijsdhqwlkmhtbbABEKMHOPCTXYIJS"
            "abenikvoptuxwABEHIKMNOPTXYZ"
            "ignorepvustcabdfhjklmqwyzgioui"
            "<<<<<<<<<<<"
            ">>>>>>>>>>>",
            strict=True,
        )
    )
)


def _plain(text: str) -> str:
    """NFKC, ASCII-smuggling tag characters read as ASCII, format characters removed."""
    folded = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    # Tag characters (U+E0020-E007E) are invisible copies of ASCII that models read.
    untagged = "".join(chr(ord(c) - 0xE0000) if 0xE0020 <= ord(c) <= 0xE007E else c for c in folded)
    return "".join(c for c in untagged if unicodedata.category(c) != "Cf")


def _latin(text: str) -> str:
    """Look-alike letters as Latin ones, accents removed: what English patterns read."""
    decomposed = unicodedata.normalize("NFD", text.translate(_CONFUSABLES))
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


# Single letters joined by one separator, the same throughout: "i g n o r e", "I.G.N.O.R.E",
# "i-g-n-o-r-e". A wider gap (two spaces) ends the word, so "a l l  p r e v" reads as
# "all prev". Each run starts at a letter after no word character: linear.
_SPACED_LETTERS = re.compile(r"(?<!\w)[^\W\d_](?P<gap>[ .\-_])[^\W\d_](?:(?P=gap)[^\W\d_])*(?!\w)")


def _joined(text: str) -> str:
    """Letter-spaced words written as words."""
    return _SPACED_LETTERS.sub(lambda m: m.group(0).replace(m.group("gap"), ""), text)


# Encoded runs worth decoding; each is bounded below so that prose is not decoded.
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/_-]{4}[ ]?){4,}[A-Za-z0-9+/_-]{0,3}={0,2}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){8,}")
_BYTE_ESCAPES = re.compile(r"(?:\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4})+")
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")
_MAX_DECODED = 32  # encoded runs decoded per text: enough for any strategy


def _readable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(c.isprintable() or c in "\n\t" for c in text)
    letters = sum(c.isalpha() for c in text)
    return text if text and printable >= 0.95 * len(text) and letters >= 0.5 * len(text) else None


def _hex(run: str) -> str | None:
    return _readable(bytes.fromhex(run))


def _base64(run: str) -> str | None:
    compact = run.replace(" ", "").rstrip("=")
    compact = compact.replace("-", "+").replace("_", "/")
    try:
        return _readable(base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True))
    except (binascii.Error, ValueError):
        return None


def _replacer(decode: Callable[[str], str | None]) -> Callable[[re.Match[str]], str]:
    """Replaces each run by its decoded text, for the first ``_MAX_DECODED`` runs."""
    runs = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal runs
        runs += 1
        found = decode(match.group(0)) if runs <= _MAX_DECODED else None
        return match.group(0) if found is None else f" {found} "

    return replace


def _decoded(text: str) -> Iterator[str]:
    """The text with each kind of encoding it holds decoded in place."""
    if "&" in text:
        yield html.unescape(text)
    if _PERCENT.search(text):
        yield urllib.parse.unquote(text)
    if _BYTE_ESCAPES.search(text):
        yield _BYTE_ESCAPES.sub(
            lambda m: codecs.decode(m.group(0).encode("ascii"), "unicode_escape"), text
        )
    for pattern, decode in ((_HEX, _hex), (_BASE64, _base64)):
        decoded = pattern.sub(_replacer(decode), text)
        if decoded != text:
            yield decoded
    # rot13 costs one pass and reads as English only if it was meant to.
    yield codecs.decode(text, "rot13")


def views(text: str) -> list[str]:
    """The forms of a text that the patterns read.

    The text as written, its normalized form (NFKC, invisible and format
    characters removed, ASCII-smuggling tag characters read as ASCII), that form
    with look-alike letters mapped to Latin and accents removed, that form with
    letter-spaced words joined ("i g n o r e", "I.G.N.O.R.E"), and the same for
    every decoded form of the encodings it holds (two levels deep: base64 of
    percent-encoding is read).

    Args:
        text: Any text.

    Returns:
        The distinct forms, the text as written first.
    """
    seen = dict.fromkeys([text])
    layer = [text]
    for _ in range(2):
        found = []
        for form in layer:
            plain = _plain(form)
            latin = _latin(plain)
            for candidate in (plain, latin, _joined(latin), *_decoded(plain)):
                if candidate not in seen:
                    seen[candidate] = None
                    found.append(candidate)
        layer = found
    for form in list(seen):  # each decoded form, read as the patterns read text
        seen.setdefault(_latin(_plain(form)))
    return list(seen)
