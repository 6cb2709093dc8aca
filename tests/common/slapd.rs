//! A real OpenLDAP `slapd` per test: temporary config and data on a free loopback port, LDIF
//! fixtures loaded with `slapadd`, stopped (and restartable) by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine;

pub const SUFFIX: &str = "dc=example,dc=com";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=com";
pub const ADMIN_PW: &str = "secret";

fn find(bin: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.exists())
}

pub struct Slapd {
    pub port: u16,
    /// With TLS: the port of `ldaps://`.
    pub tls_port: Option<u16>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One LDIF attribute line, base64 when the value is not a safe string (RFC 2849).
pub fn attr(name: &str, value: &str) -> String {
    let safe = value.is_ascii()
        && !value.starts_with([' ', ':', '<'])
        && !value.ends_with(' ')
        && !value.contains(['\n', '\r', '\0']);
    if safe {
        format!("{name}: {value}\n")
    } else {
        format!(
            "{name}:: {}\n",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }
}

/// An `inetOrgPerson` below `ou=people` (customer ids as multi-valued `o`); `extra` are further
/// LDIF lines.
pub fn person(uid: &str, given: &str, sn: &str, mail: &str, orgs: &[&str], extra: &str) -> String {
    let mut e =
        attr("dn", &format!("uid={uid},ou=people,{SUFFIX}")) + "objectClass: inetOrgPerson\n";
    e += &attr("uid", uid);
    e += &attr("cn", &format!("{given} {sn}"));
    e += &attr("givenName", given);
    e += &attr("sn", sn);
    e += &attr("mail", mail);
    for o in orgs {
        e += &attr("o", o);
    }
    e + extra + "\n"
}

impl Slapd {
    /// Starts a directory holding `ldif` (entries below `dc=example,dc=com`, which is created),
    /// or `None` when slapd is not installed and not required.
    pub fn start(ldif: &str) -> Option<Self> {
        Self::start_with(ldif, false)
    }

    /// Like [`Slapd::start`], also serving StartTLS and `ldaps://` with a certificate signed by
    /// a fresh CA (`ca_file()`).
    pub fn start_tls(ldif: &str) -> Option<Self> {
        Self::start_with(ldif, true)
    }

    /// The CA certificate of a TLS server.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_with(ldif: &str, tls: bool) -> Option<Self> {
        let (Some(slapd), Some(_)) = (find("slapd"), find("slapadd")) else {
            if std::env::var("CLIENTELE_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1") {
                panic!("slapd is not installed but CLIENTELE_TEST_REQUIRE_ALL=1 (apt-get install slapd ldap-utils)");
            }
            eprintln!("skipping LDAP: slapd is not installed (apt-get install slapd ldap-utils)");
            return None;
        };
        let _ = slapd;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             sizelimit 1000\n\
             database mdb\n\
             maxsize 67108864\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw {ADMIN_PW}\n\
             directory {d}/data\n\
             index uid,mail,o eq\n",
            d = dir.path().display()
        );
        let conf = if tls {
            super::certs::ca(dir.path(), "ca");
            super::certs::leaf(
                dir.path(),
                "ca",
                "server",
                "127.0.0.1",
                "IP:127.0.0.1,DNS:localhost",
            );
            let d = dir.path().display();
            conf.replace(
                "sizelimit 1000\n",
                &format!(
                    "sizelimit 1000\nTLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\nTLSCertificateKeyFile {d}/server.key\n"
                ),
            )
        } else {
            conf
        };
        std::fs::write(dir.path().join("slapd.conf"), conf).unwrap();
        let base = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=companies,{SUFFIX}\nobjectClass: organizationalUnit\nou: companies\n\n{ldif}"
        );
        std::fs::write(dir.path().join("data.ldif"), base).unwrap();
        let out = Command::new(find("slapadd").unwrap())
            .arg("-f")
            .arg(dir.path().join("slapd.conf"))
            .arg("-l")
            .arg(dir.path().join("data.ldif"))
            .output()
            .expect("run slapadd");
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let tls_port = tls.then(free_port);
        let mut s = Self {
            port,
            tls_port,
            dir,
            child: None,
        };
        s.run();
        Some(s)
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://` of a TLS server.
    pub fn ldaps_url(&self) -> Option<String> {
        self.tls_port.map(|p| format!("ldaps://127.0.0.1:{p}"))
    }

    fn run(&mut self) {
        let mut listen = format!("ldap://127.0.0.1:{}/", self.port);
        if let Some(p) = self.tls_port {
            listen.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
        }
        let child = Command::new(find("slapd").unwrap())
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-h")
            .arg(listen)
            .arg("-d")
            .arg("0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start slapd");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < until,
                "slapd did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (data stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
