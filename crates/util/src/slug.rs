//! Slugs: text reduced to characters that are safe in file names and ids.

/// `text` with every character that is not an ASCII letter or digit, nor one of `keep`,
/// replaced by `replacement`.
pub fn slug(text: &str, keep: &str, replacement: char) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || keep.contains(c) {
                c
            } else {
                replacement
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_letters_digits_and_the_chosen_marks() {
        assert_eq!(slug("udhr:related/x y", "-_", '_'), "udhr_related_x_y");
        assert_eq!(slug("lr 1e-3.5_é", ".-", '-'), "lr-1e-3.5--");
    }
}
