"""Document intake: bytes in, a typed ParsedDocument out.

The rule of the package: `parse(data, content_type)` takes an uploaded file's bytes and its declared type
and returns a ParsedDocument (blocks of text with their page and heading path), or raises UnsupportedType
(the API's 415) or UnreadableDocument (a reason the user can read). Nothing here speaks HTTP, touches the
database or the index, or writes a file; the only I/O is running Tesseract on a page without a text layer.
The parsers' libraries (pypdfium2, python-docx, selectolax) are imported when a file of their type arrives,
so importing this package adds nothing to a function's cold start.
"""

from harvey.intake.dispatch import SUPPORTED_TYPES, parse, sniff
from harvey.intake.document import Block, ParsedDocument, UnreadableDocument, UnsupportedType

__all__ = ["SUPPORTED_TYPES", "Block", "ParsedDocument", "UnreadableDocument", "UnsupportedType", "parse", "sniff"]
