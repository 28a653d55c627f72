"""The web-URL rule: a URL a user gave (a website, documentation, slides, a repository) may become
a link only when it is http:// or https://. Checked when answers are saved
(`reviews.services.answers`) and again when a page renders one (the `safe_url` and
`external_link` filters), so a `javascript:` or `data:` URL that reached the database some
other way still never becomes a link."""

import re

# A browser ignores leading spaces and control characters before the scheme; anything that
# starts with a literal http(s):// has that scheme, whatever follows.
WEB_URL_RE = re.compile(r"https?://\S", re.IGNORECASE)


def is_web_url(url: object) -> bool:
    """True for an http(s) URL (after surrounding whitespace), False for anything else."""
    return isinstance(url, str) and WEB_URL_RE.match(url.strip()) is not None
