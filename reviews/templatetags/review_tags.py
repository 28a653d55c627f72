"""Template helpers of the review pages: sanitised Markdown, outcome badges."""

import markdown as markdown_lib
import nh3
from django import template
from django.utils.safestring import mark_safe

register = template.Library()

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "h1", "h2", "h3", "h4", "table", "thead", "tbody", "tr", "th", "td", "del",
}  # fmt: skip


@register.filter
def render_markdown(text: str) -> str:
    """Markdown -> HTML, then nh3 keeps only harmless tags, attributes and URL schemes."""
    html = markdown_lib.markdown(text or "", extensions=["fenced_code", "tables"])
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
    )
    return mark_safe(clean)  # noqa: S308 - sanitised by nh3 just above


@register.filter
def outcome_class(outcome: str) -> str:
    return {"met": "passed", "unmet": "failed", "unknown": "queued", "na": "none"}.get(
        outcome or "", "none"
    )
