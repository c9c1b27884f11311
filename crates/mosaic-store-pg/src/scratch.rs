//! Scratch databases: a PostgreSQL database created for one test run (or a
//! trial) and dropped — `WITH (FORCE)`, closing connections left open — when
//! its guard goes out of scope, whether the run passed or panicked.
//!
//! The admin connection is `MOSAIC_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; `scripts/services`
//! starts PostgreSQL there).

use mosaic_types::{MosaicError, MosaicResult};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn admin_url() -> String {
    std::env::var("MOSAIC_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

async fn admin_client() -> MosaicResult<tokio_postgres::Client> {
    let url = admin_url();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .map_err(|e| {
            MosaicError::unavailable(format!(
                "PostgreSQL is not reachable at {url} ({e}); run scripts/services first"
            ))
        })?;
    tokio::spawn(conn);
    Ok(client)
}

/// Whether a database of this name exists.
pub async fn database_exists(name: &str) -> MosaicResult<bool> {
    Ok(admin_client()
        .await?
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(|e| MosaicError::internal(e.to_string()))?
        .is_some())
}

/// A database dropped when this guard goes out of scope.
pub struct ScratchDatabase {
    pub name: String,
    pub url: String,
}

impl ScratchDatabase {
    pub async fn create() -> MosaicResult<ScratchDatabase> {
        // Only hex digits: safe to splice into the DDL (database names
        // cannot be bound parameters).
        let name = format!("mosaic_test_{}", mosaic_types::new_id().replace('-', ""));
        let client = admin_client().await?;
        // A linguistic default collation (ICU, English), where `_`, `.`,
        // `-` and accented letters sort differently from bytes: the stores
        // must still order rows as the embedded backend does. Plain
        // `CREATE DATABASE` where the server has no ICU.
        let icu = format!(
            "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        );
        if client.batch_execute(&icu).await.is_err() {
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .map_err(|e| MosaicError::internal(format!("create database {name}: {e}")))?;
        }
        Ok(ScratchDatabase {
            url: with_database(&admin_url(), &name),
            name,
        })
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime, which cannot be blocked on: a
        // short-lived thread with its own runtime drops the database.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop scratch database {}: {e}", self.name);
        }
    }
}

/// A throwaway PostgreSQL server of its own (`initdb` in a temporary
/// directory, a free port, `fsync=off`) that a test can stop and start to
/// take a database away — unlike a [`ScratchDatabase`] on the shared
/// server. Stopped and deleted when dropped. As root, the server's tools
/// run as the `postgres` user (the server refuses to run as root).
pub struct ScratchCluster {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    pub port: u16,
    /// Server settings beyond the defaults (`-c ssl=on …`).
    extra: String,
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl ScratchCluster {
    /// The newest installed server's tools (`scripts/services` installs one).
    fn bin() -> Result<std::path::PathBuf, String> {
        let base = std::path::PathBuf::from("/usr/lib/postgresql");
        let newest = std::fs::read_dir(&base)
            .map_err(|e| {
                format!(
                    "{}: {e} (scripts/services installs PostgreSQL)",
                    base.display()
                )
            })?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .max()
            .ok_or("no PostgreSQL version under /usr/lib/postgresql")?;
        Ok(base.join(newest.to_string()).join("bin"))
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{tool}: {}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Creates and starts a cluster.
    pub fn create() -> Result<ScratchCluster, String> {
        Self::create_inner(None)
    }

    /// Creates and starts a cluster with `ssl=on`, serving `cert_pem`
    /// (the chain) with `key_pem`.
    pub fn create_with_tls(cert_pem: &str, key_pem: &str) -> Result<ScratchCluster, String> {
        Self::create_inner(Some((cert_pem, key_pem)))
    }

    fn create_inner(tls: Option<(&str, &str)>) -> Result<ScratchCluster, String> {
        let dir = std::env::temp_dir().join(format!("mosaic-pg-{}", mosaic_types::new_id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if is_root() {
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !ok.success() {
                return Err("chown of the cluster directory failed".into());
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        let mut c = ScratchCluster {
            dir,
            bin: Self::bin()?,
            port,
            extra: String::new(),
        };
        let data = c.data();
        c.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        )?;
        if let Some((cert, key)) = tls {
            c.extra = c.install_tls(cert, key)?;
        }
        c.start()?;
        Ok(c)
    }

    /// Writes the certificate and key where the server reads them (its key
    /// private to the server's user); the settings that turn TLS on.
    fn install_tls(&self, cert: &str, key: &str) -> Result<String, String> {
        let cert_path = self.dir.join("server.crt");
        let key_path = self.dir.join("server.key");
        std::fs::write(&cert_path, cert).map_err(|e| format!("server.crt: {e}"))?;
        std::fs::write(&key_path, key).map_err(|e| format!("server.key: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("server.key: {e}"))?;
        }
        if is_root() {
            std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&cert_path)
                .arg(&key_path)
                .status()
                .map_err(|e| format!("chown: {e}"))?;
        }
        Ok(format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert_path.display(),
            key_path.display()
        ))
    }

    /// Starts the server (waits until it accepts connections).
    pub fn start(&self) -> Result<(), String> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200{}",
            self.port,
            self.dir.display(),
            self.extra
        );
        let log = self.dir.join("log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        )
    }

    /// Stops the server at once, as a crash would (`-m immediate`).
    pub fn stop(&self) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        )
    }

    /// The cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
