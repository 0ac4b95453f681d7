//! Grid boundaries: GeoJSON Polygon / MultiPolygon validation, bounding boxes and
//! point-in-polygon. Coordinates follow GeoJSON order: `[lon, lat]`.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
}

impl Point {
    pub fn parse(lat: f64, lon: f64) -> Result<Self, String> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err("lat must be between -90 and 90".into());
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err("lon must be between -180 and 180".into());
        }
        Ok(Self { lat, lon })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub min_lat: f64,
    pub max_lat: f64,
    pub min_lon: f64,
    pub max_lon: f64,
}

/// A validated boundary: polygons, each an outer ring followed by its holes.
#[derive(Debug, Clone, PartialEq)]
pub struct Boundary {
    polygons: Vec<Vec<Vec<(f64, f64)>>>,
}

const MAX_POSITIONS: usize = 10_000;

impl Boundary {
    pub fn parse(value: &Value) -> Result<Self, String> {
        let kind = value.get("type").and_then(Value::as_str);
        let coordinates =
            value.get("coordinates").ok_or("must be a GeoJSON Polygon or MultiPolygon with `coordinates`")?;
        let polygons = match kind {
            Some("Polygon") => vec![parse_polygon(coordinates)?],
            Some("MultiPolygon") => coordinates
                .as_array()
                .ok_or("MultiPolygon coordinates must be an array of polygons")?
                .iter()
                .map(parse_polygon)
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err("type must be \"Polygon\" or \"MultiPolygon\"".into()),
        };
        if polygons.is_empty() {
            return Err("MultiPolygon must hold at least one polygon".into());
        }
        let positions: usize = polygons.iter().flatten().map(Vec::len).sum();
        if positions > MAX_POSITIONS {
            return Err(format!("must have at most {MAX_POSITIONS} positions"));
        }
        Ok(Self { polygons })
    }

    pub fn bounding_box(&self) -> BoundingBox {
        let mut bbox = BoundingBox {
            min_lat: f64::INFINITY,
            max_lat: f64::NEG_INFINITY,
            min_lon: f64::INFINITY,
            max_lon: f64::NEG_INFINITY,
        };
        for &(lon, lat) in self.polygons.iter().filter_map(|p| p.first()).flatten() {
            bbox.min_lat = bbox.min_lat.min(lat);
            bbox.max_lat = bbox.max_lat.max(lat);
            bbox.min_lon = bbox.min_lon.min(lon);
            bbox.max_lon = bbox.max_lon.max(lon);
        }
        bbox
    }

    /// True when the point is inside or on the edge: a grid worker standing on the street
    /// that bounds two grids is in both, and the caller takes the first (deepest) match.
    pub fn contains(&self, point: Point) -> bool {
        self.polygons.iter().any(|rings| {
            let Some((outer, holes)) = rings.split_first() else {
                return false;
            };
            if on_ring(outer, point) {
                return true;
            }
            in_ring(outer, point) && !holes.iter().any(|hole| in_ring(hole, point) && !on_ring(hole, point))
        })
    }
}

impl Boundary {
    /// How far the point lies outside the boundary, in metres: 0 inside or on the edge, else
    /// the distance to the nearest edge. A local flat projection around the point: exact
    /// enough for the few hundred metres a tolerance covers.
    pub fn distance_m(&self, point: Point) -> f64 {
        if self.contains(point) {
            return 0.0;
        }
        const METRES_PER_DEGREE: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;
        let x_scale = METRES_PER_DEGREE * point.lat.to_radians().cos();
        let project = |(lon, lat): (f64, f64)| ((lon - point.lon) * x_scale, (lat - point.lat) * METRES_PER_DEGREE);
        self.polygons
            .iter()
            .flatten()
            .flat_map(|ring| ring.windows(2))
            .map(|edge| {
                let ((x1, y1), (x2, y2)) = (project(edge[0]), project(edge[1]));
                // Distance from the origin (the point) to the segment.
                let (dx, dy) = (x2 - x1, y2 - y1);
                let length2 = dx * dx + dy * dy;
                let t = if length2 == 0.0 { 0.0 } else { (-(x1 * dx + y1 * dy) / length2).clamp(0.0, 1.0) };
                (x1 + t * dx).hypot(y1 + t * dy)
            })
            .fold(f64::INFINITY, f64::min)
    }
}

/// The mean Earth radius (IUGG), metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The great-circle distance between two points in metres (haversine): the one definition of
/// "how far apart" for duplicate reports and repeated problems.
pub fn distance_m(a: Point, b: Point) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let d_lat = lat2 - lat1;
    let d_lon = (b.lon - a.lon).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

impl BoundingBox {
    /// A box holding every point within `radius_m` of `center` (a little more near its
    /// corners): the index-friendly prefilter before the exact [`distance_m`].
    pub fn around(center: Point, radius_m: f64) -> Self {
        let metres_per_degree = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
        let d_lat = radius_m / metres_per_degree;
        // Longitude degrees shrink with the cosine of the latitude; near the poles the box
        // takes every longitude.
        let cos = center.lat.to_radians().cos();
        let d_lon = if cos < 1e-6 { 360.0 } else { (radius_m / (metres_per_degree * cos)).min(360.0) };
        Self {
            min_lat: (center.lat - d_lat).max(-90.0),
            max_lat: (center.lat + d_lat).min(90.0),
            min_lon: center.lon - d_lon,
            max_lon: center.lon + d_lon,
        }
    }
}

fn parse_polygon(value: &Value) -> Result<Vec<Vec<(f64, f64)>>, String> {
    let rings = value.as_array().ok_or("Polygon coordinates must be an array of rings")?;
    if rings.is_empty() {
        return Err("Polygon must have an outer ring".into());
    }
    rings.iter().map(parse_ring).collect()
}

fn parse_ring(value: &Value) -> Result<Vec<(f64, f64)>, String> {
    let positions = value.as_array().ok_or("a ring must be an array of [lon, lat] positions")?;
    let ring = positions
        .iter()
        .map(|position| {
            let pair = position.as_array().filter(|p| p.len() >= 2).ok_or("a position must be [lon, lat]")?;
            let lon = pair[0].as_f64().ok_or("lon must be a number")?;
            let lat = pair[1].as_f64().ok_or("lat must be a number")?;
            Point::parse(lat, lon)?;
            Ok((lon, lat))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if ring.len() < 4 {
        return Err("a ring needs at least 4 positions".into());
    }
    if ring.first() != ring.last() {
        return Err("a ring must be closed: its last position equals its first".into());
    }
    Ok(ring)
}

/// Ray casting (even-odd rule).
fn in_ring(ring: &[(f64, f64)], p: Point) -> bool {
    let mut inside = false;
    for edge in ring.windows(2) {
        let ((x1, y1), (x2, y2)) = (edge[0], edge[1]);
        if (y1 > p.lat) != (y2 > p.lat) {
            let x_at = x1 + (p.lat - y1) * (x2 - x1) / (y2 - y1);
            if p.lon < x_at {
                inside = !inside;
            }
        }
    }
    inside
}

fn on_ring(ring: &[(f64, f64)], p: Point) -> bool {
    const EPSILON: f64 = 1e-12;
    ring.windows(2).any(|edge| {
        let ((x1, y1), (x2, y2)) = (edge[0], edge[1]);
        let cross = (x2 - x1) * (p.lat - y1) - (y2 - y1) * (p.lon - x1);
        cross.abs() <= EPSILON
            && p.lon >= x1.min(x2) - EPSILON
            && p.lon <= x1.max(x2) + EPSILON
            && p.lat >= y1.min(y2) - EPSILON
            && p.lat <= y1.max(y2) + EPSILON
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn square_with_hole() -> Boundary {
        Boundary::parse(&json!({
            "type": "Polygon",
            "coordinates": [
                [[112.0, 38.0], [113.0, 38.0], [113.0, 39.0], [112.0, 39.0], [112.0, 38.0]],
                [[112.4, 38.4], [112.6, 38.4], [112.6, 38.6], [112.4, 38.6], [112.4, 38.4]]
            ]
        }))
        .expect("valid polygon")
    }

    fn at(lat: f64, lon: f64) -> Point {
        Point { lat, lon }
    }

    #[test]
    fn inside_outside_edge_and_hole() {
        let b = square_with_hole();
        assert!(b.contains(at(38.2, 112.2)), "inside");
        assert!(!b.contains(at(39.5, 112.5)), "north of it");
        assert!(!b.contains(at(38.5, 111.9)), "west of it");
        assert!(b.contains(at(38.0, 112.5)), "on the southern edge");
        assert!(b.contains(at(39.0, 113.0)), "on a corner");
        assert!(!b.contains(at(38.5, 112.5)), "in the hole");
        assert!(b.contains(at(38.4, 112.5)), "on the hole's edge belongs to the grid");
    }

    #[test]
    fn multipolygon_and_bbox() {
        let b = Boundary::parse(&json!({
            "type": "MultiPolygon",
            "coordinates": [
                [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]],
                [[[5.0, 5.0], [6.0, 5.0], [6.0, 6.0], [5.0, 5.0]]]
            ]
        }))
        .expect("valid multipolygon");
        assert!(b.contains(at(5.2, 5.8)));
        assert!(!b.contains(at(3.0, 3.0)));
        assert_eq!(b.bounding_box(), BoundingBox { min_lat: 0.0, max_lat: 6.0, min_lon: 0.0, max_lon: 6.0 });
    }

    #[test]
    fn rejects_malformed_geojson() {
        let bad = [
            json!({"type": "Point", "coordinates": [1.0, 2.0]}),
            json!({"type": "Polygon"}),
            json!({"type": "Polygon", "coordinates": []}),
            json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]}),
            json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]]}),
            json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [200.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]}),
            json!({"type": "Polygon", "coordinates": [[["a", 0.0], [1.0, 0.0], [1.0, 1.0], ["a", 0.0]]]}),
            json!({"type": "MultiPolygon", "coordinates": []}),
        ];
        for value in bad {
            assert!(Boundary::parse(&value).is_err(), "{value} should be rejected");
        }
    }

    #[test]
    fn distance_outside_the_boundary() {
        let b = square_with_hole();
        assert_eq!(b.distance_m(at(38.2, 112.2)), 0.0, "inside");
        assert_eq!(b.distance_m(at(38.0, 112.5)), 0.0, "on the edge");
        // 0.001° of latitude north of the northern edge: about 111 m.
        let north = b.distance_m(at(39.001, 112.5));
        assert!((north - 111.2).abs() < 1.0, "{north}");
        // West of the western edge by 0.001° of longitude at 38.5°N: about 87 m.
        let west = b.distance_m(at(38.5, 111.999));
        assert!((west - 87.0).abs() < 1.0, "{west}");
        // In the hole, 0.01° from its nearest edge.
        let hole = b.distance_m(at(38.5, 112.59));
        assert!((hole - 870.0).abs() < 10.0, "{hole}");
        // Beijing is far from a grid in Xinzhou.
        assert!(b.distance_m(at(39.9, 116.4)) > 300_000.0);
    }

    #[test]
    fn haversine_distances() {
        let here = at(38.41, 112.705);
        assert_eq!(distance_m(here, here), 0.0);
        // 0.001° of latitude is 111.19 m everywhere.
        let north = distance_m(here, at(38.411, 112.705));
        assert!((north - 111.19).abs() < 0.01, "{north}");
        // 0.001° of longitude at 38.41°N: 111.19 m · cos 38.41° ≈ 87.13 m.
        let east = distance_m(here, at(38.41, 112.706));
        assert!((east - 87.13).abs() < 0.01, "{east}");
        // Symmetric, and Xinzhou to Beijing is about 330 km.
        assert_eq!(distance_m(here, at(39.9, 116.4)), distance_m(at(39.9, 116.4), here));
        let beijing = distance_m(here, at(39.9, 116.4));
        assert!((330_000.0..360_000.0).contains(&beijing), "{beijing}");
    }

    #[test]
    fn the_box_around_a_point_holds_its_circle() {
        let center = at(38.41, 112.705);
        let bbox = BoundingBox::around(center, 100.0);
        for bearing in 0..360 {
            let (s, c) = f64::from(bearing).to_radians().sin_cos();
            // A point 99.9 m away in each direction lies inside the box.
            let p = at(
                center.lat + c * 99.9 / 111_195.0,
                center.lon + s * 99.9 / (111_195.0 * 38.41f64.to_radians().cos()),
            );
            assert!(distance_m(center, p) < 100.0);
            assert!(p.lat >= bbox.min_lat && p.lat <= bbox.max_lat && p.lon >= bbox.min_lon && p.lon <= bbox.max_lon);
        }
        assert!(bbox.max_lat - bbox.min_lat < 0.002);
    }

    #[test]
    fn point_range() {
        assert!(Point::parse(38.4, 112.7).is_ok());
        assert!(Point::parse(91.0, 0.0).is_err());
        assert!(Point::parse(0.0, -181.0).is_err());
        assert!(Point::parse(f64::NAN, 0.0).is_err());
    }
}
