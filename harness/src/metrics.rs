//! Prometheus text format, read back.

/// The sum of every sample of metric `name` in `text` (all label sets): the lines whose
/// metric name, before `{` or a space, is exactly `name`.
pub fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_label_set_of_one_metric_only() {
        let text = "# HELP photo_x_total X\n# TYPE photo_x_total counter\n\
                    photo_x_total{kind=\"a\"} 2\nphoto_x_total{kind=\"b\"} 3.5\n\
                    photo_x_total_other 100\nphoto_y 7\n";
        assert_eq!(sum(text, "photo_x_total"), 5.5);
        assert_eq!(sum(text, "photo_y"), 7.0);
        assert_eq!(sum(text, "photo_z"), 0.0);
    }
}
