//! Account details that the data set does not store (creation date, folder
//! count), derived from the names so that they stay the same between runs.

/// FNV-1a, 64 bits: a stable hash of a name.
pub(crate) fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Seconds since 1970 of 2015-01-01 00:00:00 UTC, the earliest creation date.
const EARLIEST_CREATION: u64 = 1_420_070_400;
/// Ten years of seconds: the spread of creation dates.
const CREATION_SPREAD: u64 = 315_360_000;

/// Creation time of an account as seconds since 1970.
pub(crate) fn creation_time(domain: &str, account: &str) -> u64 {
    EARLIEST_CREATION + stable_hash(&[domain, account]) % CREATION_SPREAD
}

/// Mailbox folder count: the five standard folders plus up to 19 more.
pub(crate) fn folder_count(domain: &str, account: &str, message_count: u64) -> u64 {
    if message_count == 0 {
        return 5;
    }
    5 + stable_hash(&[account, domain]) % 20
}

/// Formats a time as Axigen prints dates, `Tue, 12 Mar 2019 10:11:12 +0200`,
/// in a fixed +0200 zone.
pub(crate) fn format_date(unix_seconds: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let local = unix_seconds + 2 * 3600;
    let days = local / 86_400;
    let seconds_of_day = local % 86_400;
    let (year, month, day) = civil_date(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0200",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        seconds_of_day / 3600,
        seconds_of_day % 3600 / 60,
        seconds_of_day % 60
    )
}

/// Formats the date part as `2019-03-12`.
pub(crate) fn format_iso_date(unix_seconds: u64) -> String {
    let (year, month, day) = civil_date(unix_seconds / 86_400);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Converts days since 1970-01-01 to (year, month, day) in the proleptic
/// Gregorian calendar, counting in 400-year eras that start on March 1.
fn civil_date(days_since_epoch: u64) -> (u64, u64, u64) {
    // 719468 days separate 0000-03-01 from 1970-01-01.
    let days = days_since_epoch + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March, so that February's leap day comes last.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_matches_known_time() {
        // 2019-03-12 08:11:12 UTC is 10:11:12 at +0200, a Tuesday.
        assert_eq!(
            format_date(1_552_378_272),
            "Tue, 12 Mar 2019 10:11:12 +0200"
        );
    }

    #[test]
    fn leap_day_is_dated_correctly() {
        // 2020-02-29 12:00:00 UTC.
        assert_eq!(format_iso_date(1_582_977_600), "2020-02-29");
    }
}
