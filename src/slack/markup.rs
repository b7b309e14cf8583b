//! Slack's message markup: `<@U1>`, `<#C1|ops>`, `<!here>`,
//! `<!subteam^S1|@oncall>`, `<https://x|label>`. People's own `<`, `>` and
//! `&` arrive escaped (`&lt;`, `&gt;`, `&amp;`), so every `<...>` is markup.

use std::borrow::Cow;

/// A stretch of a Slack message: text as people wrote it (still escaped),
/// or one piece of markup.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    /// `<target|label>` or `<target>`.
    Markup {
        target: &'a str,
        label: Option<&'a str>,
    },
}

/// The pieces of `text` in order. An unclosed `<` is text.
pub fn pieces(text: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = text;
    let mut markup_next = None;
    std::iter::from_fn(move || {
        if let Some(markup) = markup_next.take() {
            return Some(markup);
        }
        if rest.is_empty() {
            return None;
        }
        let Some((open, close)) = rest
            .find('<')
            .and_then(|open| Some((open, open + rest[open..].find('>')?)))
        else {
            return Some(Piece::Text(std::mem::take(&mut rest)));
        };
        let inner = &rest[open + 1..close];
        let (target, label) = match inner.split_once('|') {
            Some((target, label)) => (target, Some(label)),
            None => (inner, None),
        };
        let text = &rest[..open];
        rest = &rest[close + 1..];
        let markup = Piece::Markup { target, label };
        if text.is_empty() {
            Some(markup)
        } else {
            markup_next = Some(markup);
            Some(Piece::Text(text))
        }
    })
}

/// `&lt;`, `&gt;` and `&amp;` as the characters people typed.
pub fn unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// A message as a person reads it in Slack: `<@U1>` as `@U1`, `<#C1|ops>`
/// as `#ops`, `<!here>` as `@here`, a link as its label (or address), and
/// escaped characters as typed.
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text) {
        match piece {
            Piece::Text(text) => out.push_str(&unescape(text)),
            Piece::Markup { target, label } => {
                let sigil = target.chars().next().filter(|c| matches!(c, '@' | '#'));
                match (sigil, label) {
                    (Some(sigil), Some(label)) => {
                        out.push(sigil);
                        out.push_str(&unescape(label));
                    }
                    (_, Some(label)) => out.push_str(&unescape(label)),
                    (None, None) if target.starts_with('!') => {
                        out.push('@');
                        out.push_str(target[1..].split('^').next().unwrap_or_default());
                    }
                    (_, None) => out.push_str(&unescape(target)),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_text_come_apart_in_order() {
        let got: Vec<Piece> = pieces("a <@U1> b<https://x|l>").collect();
        assert_eq!(
            got,
            [
                Piece::Text("a "),
                Piece::Markup {
                    target: "@U1",
                    label: None
                },
                Piece::Text(" b"),
                Piece::Markup {
                    target: "https://x",
                    label: Some("l")
                },
            ]
        );
        let unclosed: Vec<Piece> = pieces("a < b").collect();
        assert_eq!(unclosed, [Piece::Text("a < b")]);
        assert_eq!(pieces("").count(), 0);
    }

    #[test]
    fn plain_text_reads_as_slack_shows_it() {
        for (sent, shown) in [
            (
                "R&amp;D VPN &lt;critical&gt; down",
                "R&D VPN <critical> down",
            ),
            ("<!here> <@U1> see <#C1|ops>", "@here @U1 see #ops"),
            ("<!subteam^S1|@oncall> db", "@oncall db"),
            (
                "<https://x.example/a|runbook> and <https://x.example/b>",
                "runbook and https://x.example/b",
            ),
            ("&amp;lt; stays", "&lt; stays"),
            ("a < b", "a < b"),
        ] {
            assert_eq!(plain(sent), shown, "{sent}");
        }
    }
}
