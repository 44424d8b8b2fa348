//! The order in which Happy Eyeballs (RFC 8305) tries destinations.

use crate::addr::Endpoint;

/// Orders destinations for Happy Eyeballs (RFC 8305 §4): the first address's
/// family first, then the families alternate, each keeping its own order.
#[doc(hidden)]
pub fn interleave(destinations: &[Endpoint]) -> Vec<Endpoint> {
    let Some(first) = destinations.first() else {
        return Vec::new();
    };
    let preferred = first.family();
    let (mut primary, mut secondary): (Vec<_>, Vec<_>) = destinations
        .iter()
        .cloned()
        .partition(|d| d.family() == preferred);
    let mut out = Vec::with_capacity(destinations.len());
    primary.reverse();
    secondary.reverse();
    loop {
        match (primary.pop(), secondary.pop()) {
            (None, None) => break,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ep(text: &str) -> Endpoint {
        text.parse().unwrap()
    }

    #[test]
    fn interleave_prefers_first_family_then_alternates() {
        let list: Vec<Endpoint> = [
            "[2001:db8::1]:1",
            "[2001:db8::2]:1",
            "192.0.2.1:1",
            "[2001:db8::3]:1",
            "192.0.2.2:1",
        ]
        .iter()
        .map(|t| ep(t))
        .collect();
        let order: Vec<String> = interleave(&list).iter().map(|e| e.to_string()).collect();
        assert_eq!(
            order,
            [
                "[2001:db8::1]:1",
                "192.0.2.1:1",
                "[2001:db8::2]:1",
                "192.0.2.2:1",
                "[2001:db8::3]:1"
            ]
        );
        assert!(interleave(&[]).is_empty());
    }

    proptest! {
        #[test]
        fn interleave_is_a_permutation_that_alternates(families in proptest::collection::vec(any::<bool>(), 0..12)) {
            let list: Vec<Endpoint> = families.iter().enumerate().map(|(i, v6)| {
                if *v6 { Endpoint::new(Ipv6Addr::from(0x2001_0db8u128 << 96 | i as u128), 1) }
                else { Endpoint::new(Ipv4Addr::from(0xc000_0200 | i as u32), 1) }
            }).collect();
            let out = interleave(&list);
            let mut sorted_in: Vec<String> = list.iter().map(|e| e.to_string()).collect();
            let mut sorted_out: Vec<String> = out.iter().map(|e| e.to_string()).collect();
            sorted_in.sort();
            sorted_out.sort();
            prop_assert_eq!(sorted_in, sorted_out);
            if let Some(first) = list.first() {
                prop_assert_eq!(&out[0], first);
                // While both families remain, they alternate.
                let both = list.iter().filter(|e| e.family() == first.family()).count()
                    .min(list.iter().filter(|e| e.family() != first.family()).count());
                for pair in out[..both * 2].chunks(2) {
                    prop_assert_ne!(pair[0].family(), pair[1].family());
                }
            }
        }
    }
}
