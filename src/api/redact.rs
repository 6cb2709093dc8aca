//! Hand-written `Debug` for the generated messages that hold secrets (build.rs `REDACTED`):
//! every field is printed except passwords, one-time passwords and TOTP secrets (with the
//! otpauth URI carrying one), which show as `"<redacted>"` when set (an empty
//! or absent one shows as such, which tells nothing). A field added to one of these messages
//! later is left out of the output until it is listed here (`finish_non_exhaustive`).

use std::fmt;

use crate::proto as pb;

/// What a secret field prints as.
struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"<redacted>\"")
        }
    }
}

impl fmt::Debug for pb::AuthenticateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticateRequest")
            .field("login", &self.login)
            .field("password", &Redacted(&self.password))
            .field("client_ip", &self.client_ip)
            .field("otp", &Redacted(&self.otp))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::EnrollTotpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollTotpResponse")
            .field("secret", &Redacted(&self.secret))
            .field("otpauth_uri", &Redacted(&self.otpauth_uri))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::ConfirmTotpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfirmTotpRequest")
            .field("login", &self.login)
            .field("otp", &Redacted(&self.otp))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::SetPasswordRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetPasswordRequest")
            .field("login", &self.login)
            .field("password", &Redacted(&self.password))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::CreateCustomerUserRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateCustomerUserRequest")
            .field("source", &self.source)
            .field("customer_user", &self.customer_user)
            .field("password", &self.password.as_deref().map(Redacted))
            .field("generate_password", &self.generate_password)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::CreateCustomerUserResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateCustomerUserResponse")
            .field("customer_user", &self.customer_user)
            .field("generated_password", &Redacted(&self.generated_password))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "hunter2-S3cret!";

    #[test]
    fn passwords_never_show_in_debug() {
        let outputs = [
            format!(
                "{:?}",
                pb::AuthenticateRequest {
                    login: "jdoe".into(),
                    password: SECRET.into(),
                    client_ip: "192.0.2.1".into(),
                    otp: SECRET.into(),
                }
            ),
            format!(
                "{:?}",
                pb::EnrollTotpResponse {
                    secret: SECRET.into(),
                    otpauth_uri: format!("otpauth://totp/x:jdoe?secret={SECRET}"),
                }
            ),
            format!(
                "{:?}",
                pb::ConfirmTotpRequest {
                    login: "jdoe".into(),
                    otp: SECRET.into(),
                }
            ),
            format!(
                "{:?}",
                pb::SetPasswordRequest {
                    login: "jdoe".into(),
                    password: SECRET.into(),
                }
            ),
            format!(
                "{:?}",
                pb::CreateCustomerUserRequest {
                    source: "main".into(),
                    customer_user: Some(pb::CustomerUser {
                        login: "jdoe".into(),
                        ..Default::default()
                    }),
                    password: Some(SECRET.into()),
                    generate_password: false,
                }
            ),
            format!(
                "{:?}",
                pb::CreateCustomerUserResponse {
                    customer_user: None,
                    generated_password: SECRET.into(),
                }
            ),
        ];
        for out in &outputs {
            assert!(!out.contains(SECRET), "{out}");
            assert!(out.contains("<redacted>"), "{out}");
        }
        // The other fields still help debugging; pretty-printing redacts as well.
        assert!(outputs[0].contains("jdoe") && outputs[0].contains("192.0.2.1"));
        assert!(outputs[2].contains("jdoe") && outputs[4].contains("jdoe"));
        let pretty = format!(
            "{:#?}",
            pb::AuthenticateRequest {
                login: "jdoe".into(),
                password: SECRET.into(),
                client_ip: String::new(),
                otp: String::new(),
            }
        );
        assert!(!pretty.contains(SECRET), "{pretty}");
    }
}
