//! The administrative tree: city › county › township › community › grid.

use entities::UnitLevel;

pub fn rank(level: UnitLevel) -> u8 {
    match level {
        UnitLevel::City => 0,
        UnitLevel::County => 1,
        UnitLevel::Township => 2,
        UnitLevel::Community => 3,
        UnitLevel::Grid => 4,
    }
}

/// A unit hangs directly below the next level up, so every path through the tree reads
/// city › county › township › community › grid without skipping.
pub fn may_be_child_of(child: UnitLevel, parent: UnitLevel) -> bool {
    rank(child) == rank(parent) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use UnitLevel::*;

    #[test]
    fn only_the_next_level_down_is_a_child() {
        let all = [City, County, Township, Community, Grid];
        for parent in all {
            for child in all {
                let expected = matches!(
                    (parent, child),
                    (City, County) | (County, Township) | (Township, Community) | (Community, Grid)
                );
                assert_eq!(may_be_child_of(child, parent), expected, "{child:?} under {parent:?}");
            }
        }
    }
}
