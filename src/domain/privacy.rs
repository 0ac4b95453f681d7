//! Masks for residents' personal data, shown to roles that do not need the real values.

/// Two-character surnames keep both characters, so 欧阳娜娜 becomes 欧阳**.
const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "夏侯", "轩辕",
    "令狐", "端木", "独孤", "南宫", "西门", "百里", "呼延", "万俟", "澹台", "赫连", "申屠", "太史", "钟离", "闻人",
];

/// `张三` → `张*`, `欧阳娜娜` → `欧阳**`; a one-character name is masked whole.
pub fn mask_name(name: &str) -> String {
    let chars: Vec<char> = name.trim().chars().collect();
    let keep = if COMPOUND_SURNAMES.iter().any(|s| name.trim().starts_with(s)) && chars.len() > 2 { 2 } else { 1 };
    if chars.len() <= 1 {
        return "*".into();
    }
    chars.iter().take(keep).chain(std::iter::repeat_n(&'*', chars.len() - keep)).collect()
}

/// `13812345678` → `138****5678`: the first 3 and last 4 digits stay. Short numbers keep only
/// their last 2.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.trim().chars().collect();
    let n = chars.len();
    if n >= 8 {
        chars[..3].iter().chain(std::iter::repeat_n(&'*', n - 7)).chain(&chars[n - 4..]).collect()
    } else {
        std::iter::repeat_n('*', n.saturating_sub(2)).chain(chars[n.saturating_sub(2)..].iter().copied()).collect()
    }
}

/// `和平街12号3号楼` → `和平街******`: the street stays, the house number and everything after
/// it go. An address without digits keeps its first half.
pub fn mask_address(address: &str) -> String {
    let chars: Vec<char> = address.trim().chars().collect();
    let keep = chars.iter().position(char::is_ascii_digit).unwrap_or(chars.len() / 2);
    chars.iter().take(keep).chain(std::iter::repeat_n(&'*', chars.len() - keep)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(mask_address("和平街12号3号楼"), "和平街******");
        assert_eq!(mask_address("长征街小区北门"), "长征街****");
        assert_eq!(mask_address("12号"), "***");
        assert_eq!(mask_address(""), "");
    }

    #[test]
    fn names() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("张三丰"), "张**");
        assert_eq!(mask_name("欧阳娜娜"), "欧阳**");
        assert_eq!(mask_name("欧阳娜"), "欧阳*");
        assert_eq!(mask_name("王"), "*");
        assert_eq!(mask_name("Li Na"), "L****");
    }

    #[test]
    fn phones() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("0350-3031234"), "035*****1234");
        assert_eq!(mask_phone("12345"), "***45");
        assert_eq!(mask_phone("1"), "1");
    }
}
