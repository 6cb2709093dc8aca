//! A deterministic data set for trials and load tests: realistic UTF-8 names, unique logins and
//! emails, ~5% invalid customer users, spread over the customers. The same arguments always give
//! the same rows.

use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::domain::{Customer, CustomerUser, Validity};

const FIRST: &[&str] = &[
    "Anna",
    "Jürgen",
    "Zoë",
    "Łukasz",
    "José",
    "Søren",
    "Chloé",
    "Renée",
    "Björn",
    "Ingrid",
    "Mohammed",
    "Aisha",
    "Wei",
    "Yuki",
    "Olga",
    "Dmitri",
    "François",
    "Maria",
    "John",
    "Emma",
    "Lars",
    "Mette",
    "Pedro",
    "Ana",
    "Giulia",
    "Marco",
    "Hannah",
    "Noah",
    "Fatma",
    "Emre",
    "Siobhán",
    "Niamh",
    "Kenji",
    "Hana",
    "Priya",
    "Arjun",
    "Ngozi",
    "Kwame",
    "Eva",
    "Tomáš",
];

const LAST: &[&str] = &[
    "Müller",
    "Groß",
    "Schmidt",
    "O'Brien",
    "Nguyễn",
    "García",
    "Fernández",
    "Kowalski",
    "Nowak",
    "Jensen",
    "Hansen",
    "Svensson",
    "Rossi",
    "Bianchi",
    "Dubois",
    "Lefèvre",
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Yılmaz",
    "Demir",
    "Ivanov",
    "Petrova",
    "Tanaka",
    "Suzuki",
    "Kim",
    "Park",
    "Singh",
    "Patel",
    "Okafor",
    "Mensah",
    "Novák",
    "Horváth",
    "Papadopoulos",
    "Virtanen",
    "Korhonen",
    "Weiß",
    "Schäfer",
    "Meier",
];

const COMPANY: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Müller & Söhne",
    "Nordlicht",
    "Été",
    "Kōgyō",
    "Dunder Mifflin",
];

const CITY: &[&str] = &[
    "Berlin",
    "München",
    "Zürich",
    "Wien",
    "Kraków",
    "København",
    "Málaga",
    "Paris",
    "Tokyo",
    "Dublin",
];

/// ASCII for emails: umlauts spelled out, accents dropped, other letters kept only if ASCII.
pub fn ascii(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            'ø' => out.push('o'),
            'ł' => out.push('l'),
            'é' | 'è' | 'ë' | 'ễ' => out.push('e'),
            'á' | 'à' | 'å' => out.push('a'),
            'ç' => out.push('c'),
            'ó' | 'ō' => out.push('o'),
            'í' | 'ı' => out.push('i'),
            'š' => out.push('s'),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => {}
        }
    }
    out
}

/// `n` customers `cust0000`…, with UTF-8 names.
pub fn customers(n: usize, seed: u64) -> Vec<Customer> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xC057);
    (0..n)
        .map(|j| Customer {
            customer_id: format!("cust{j:04}"),
            name: format!(
                "{} {} {j}",
                COMPANY[rng.gen_range(0..COMPANY.len())],
                ["GmbH", "AG", "Ltd", "SA", "KK", "Inc"][j % 6]
            ),
            city: CITY[rng.gen_range(0..CITY.len())].to_owned(),
            ..Default::default()
        })
        .collect()
}

/// `n` customer users over `customers` customers: login `<first>.<last><i>` (UTF-8 kept),
/// email `<ascii first>.<ascii last><i>@cust<j>.example.com`, every 20th invalid.
pub fn customer_users(n: usize, customers: usize, seed: u64) -> Vec<CustomerUser> {
    let mut rng = StdRng::seed_from_u64(seed);
    let customers = customers.max(1);
    (0..n)
        .map(|i| {
            let first = FIRST[rng.gen_range(0..FIRST.len())];
            let last = LAST[rng.gen_range(0..LAST.len())];
            let j = rng.gen_range(0..customers);
            let login = format!(
                "{}.{}{i}",
                first.to_lowercase(),
                last.to_lowercase().replace('\'', "")
            );
            CustomerUser {
                email: format!("{}.{}{i}@cust{j}.example.com", ascii(first), ascii(last)),
                login,
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                customer_id: format!("cust{j:04}"),
                city: CITY[rng.gen_range(0..CITY.len())].to_owned(),
                phone: format!("+49 30 {:07}", rng.gen_range(0..10_000_000)),
                validity: if i % 20 == 7 {
                    Validity::Invalid
                } else {
                    Validity::Valid
                },
                ..Default::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_unique_and_mostly_valid() {
        let a = customer_users(2000, 10, 1);
        assert_eq!(a, customer_users(2000, 10, 1));
        let logins: std::collections::HashSet<_> =
            a.iter().map(|u| crate::domain::fold(&u.login)).collect();
        let emails: std::collections::HashSet<_> = a.iter().map(|u| u.email.clone()).collect();
        assert_eq!((logins.len(), emails.len()), (2000, 2000));
        assert_eq!(
            a.iter().filter(|u| u.validity != Validity::Valid).count(),
            100
        );
        assert!(a
            .iter()
            .all(|u| crate::domain::email::check_syntax(&u.email).is_ok()));
        assert!(a.iter().any(|u| !u.login.is_ascii()));
    }

    #[test]
    fn every_name_keeps_all_its_letters_in_ascii() {
        for name in FIRST.iter().chain(LAST) {
            let letters = name.chars().filter(|c| c.is_alphabetic()).count();
            assert!(
                ascii(name).len() >= letters,
                "{name} -> {} lost a letter",
                ascii(name)
            );
        }
        assert_eq!(ascii("François"), "francois");
    }
}
