"""limits.fit directly: whatever goes in, what comes out is within Discord's limits, and says what it left out."""

from __future__ import annotations

import discord
import pytest

from bot.discord_bot import limits
from bot.discord_bot.limits import fit, fit_embed


def big_embed(fields: int = 30, value: str = "v" * 2000, title: str = "t" * 300) -> discord.Embed:
    embed = discord.Embed(title=title, description="d" * 5000)
    embed.set_footer(text="f" * 3000)
    embed.set_author(name="a" * 300)
    for i in range(fields):
        embed.add_field(name=f"{i}" + "n" * 300, value=value)
    return embed


def within_limits(embeds: list[discord.Embed]) -> None:
    assert len(embeds) <= limits.EMBEDS and sum(len(e) for e in embeds) <= limits.EMBED_TOTAL
    for embed in embeds:
        assert len(embed.title or "") <= limits.TITLE and len(embed.description or "") <= limits.DESCRIPTION
        assert len(embed.footer.text or "") <= limits.FOOTER and len(embed.author.name or "") <= limits.AUTHOR
        assert len(embed.fields) <= limits.FIELDS
        assert all(
            len(f.name or "") <= limits.FIELD_NAME and len(f.value or "") <= limits.FIELD_VALUE for f in embed.fields
        )


def test_every_part_of_an_embed_is_cut_to_its_limit_and_the_whole_to_6000() -> None:
    embed = fit_embed(big_embed())
    within_limits([embed])
    assert embed.title is not None and embed.title.endswith("…") and len(embed.title) == limits.TITLE
    assert embed.footer.text is not None and embed.footer.text.endswith("more not shown")


def test_the_callers_embeds_are_not_changed() -> None:
    original = big_embed()
    before = original.to_dict()
    fit(None, [original])
    assert original.to_dict() == before


def test_content_is_cut_to_2000() -> None:
    assert len(fit("x" * 5000).content or "") == limits.CONTENT
    assert fit("short").content == "short" and fit().content is None


def test_a_message_of_many_embeds_keeps_what_fits_and_says_how_many_went() -> None:
    embeds = [discord.Embed(title=f"part {i}", description="d" * 1500) for i in range(12)]
    kept = fit(None, embeds).embeds
    within_limits(kept)
    assert [e.title for e in kept] == ["part 0", "part 1", "part 2"]
    assert kept[-1].footer.text == "9 more not shown"
    assert fit(None, embeds, left_out="see /x").embeds[-1].footer.text == "see /x"


def test_a_message_that_fits_is_left_as_it_is() -> None:
    embed = discord.Embed(title="Main: restarted", description="fine")
    embed.add_field(name="Main", value="ok")
    (kept,) = fit("hello", [embed]).embeds
    assert kept.to_dict() == embed.to_dict()


@pytest.mark.parametrize("count", [0, 1, 25, 26, 200])
def test_choices_are_at_most_25_of_at_most_100_characters(count: int) -> None:
    names = [f"{i}" + "n" * 150 for i in range(count)]
    chosen = limits.choices(names)
    assert len(chosen) == min(count, limits.CHOICES)
    assert all(len(c.name) <= limits.CHOICE and len(c.value) <= limits.CHOICE for c in chosen)
