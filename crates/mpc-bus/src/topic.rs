//! AMQP topic-exchange matching, for the in-process bus (RabbitMQ does its own).
//!
//! Routing keys and patterns are words separated by `.`; in a pattern `*` stands for exactly one
//! word and `#` for zero or more words: `session.*` matches `session.created` but not
//! `session` or `session.a.b`; `#` matches everything; `session.#` matches `session` too.

/// Whether `routing_key` is routed to a binding with `pattern`.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    // matches[j] = pattern[i..] matches key[j..], computed for i from the end; O(|p| * |k|), so
    // no pattern of many `#` can make publishing slow.
    let mut matches = vec![false; key.len() + 1];
    matches[key.len()] = true;
    for word in pattern.iter().rev() {
        let mut next = vec![false; key.len() + 1];
        for j in (0..=key.len()).rev() {
            next[j] = match *word {
                "#" => matches[j] || (j < key.len() && next[j + 1]),
                "*" => j < key.len() && matches[j + 1],
                literal => j < key.len() && key[j] == literal && matches[j + 1],
            };
        }
        matches = next;
    }
    matches[0]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::topic_matches;

    #[test]
    fn examples() {
        assert!(topic_matches("session.created", "session.created"));
        assert!(!topic_matches("session.created", "session.failed"));
        assert!(topic_matches("session.*", "session.created"));
        assert!(!topic_matches("session.*", "session"));
        assert!(!topic_matches("session.*", "session.a.b"));
        assert!(topic_matches("#", "session.created"));
        assert!(topic_matches("session.#", "session"));
        assert!(topic_matches("session.#", "session.a.b"));
        assert!(topic_matches("#.created", "session.created"));
        assert!(topic_matches("#.created", "created"));
        assert!(!topic_matches("#.created", "session.failed"));
        assert!(topic_matches("*.*", "session.created"));
        assert!(!topic_matches("*", "session.created"));
        assert!(topic_matches("#.#", "a"));
        assert!(topic_matches("a.#.b.#.c", "a.x.b.y.z.c"));
        assert!(!topic_matches("a.#.b.#.c", "a.x.c"));
    }

    fn words() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("[a-d]{1,3}", 1..6)
    }

    proptest! {
        #[test]
        fn a_key_matches_itself(key in words()) {
            let key = key.join(".");
            prop_assert!(topic_matches(&key, &key));
        }

        #[test]
        fn star_stands_for_exactly_one_word(key in words(), at in any::<prop::sample::Index>()) {
            let i = at.index(key.len());
            let mut pattern = key.clone();
            pattern[i] = "*".to_owned();
            prop_assert!(topic_matches(&pattern.join("."), &key.join(".")));
            // One word more or less never matches a pattern with no `#`.
            let mut longer = key.clone();
            longer.push("zz".to_owned());
            prop_assert!(!topic_matches(&pattern.join("."), &longer.join(".")));
        }

        #[test]
        fn hash_stands_for_any_run_of_words(
            key in words(),
            a in any::<prop::sample::Index>(),
            b in any::<prop::sample::Index>(),
        ) {
            // Replace key[lo..hi] (possibly empty) by `#`.
            let (lo, hi) = {
                let (x, y) = (a.index(key.len() + 1), b.index(key.len() + 1));
                (x.min(y), x.max(y))
            };
            let mut pattern: Vec<String> = key[..lo].to_vec();
            pattern.push("#".to_owned());
            pattern.extend_from_slice(&key[hi..]);
            prop_assert!(topic_matches(&pattern.join("."), &key.join(".")));
        }

        #[test]
        fn a_different_literal_word_never_matches(key in words(), at in any::<prop::sample::Index>()) {
            let i = at.index(key.len());
            let mut pattern = key.clone();
            pattern[i] = "zz".to_owned(); // keys use a-d only
            prop_assert!(!topic_matches(&pattern.join("."), &key.join(".")));
        }
    }
}
