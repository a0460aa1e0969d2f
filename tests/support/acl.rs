//! Redis ACL users for the tests: the commands the README lists for a least-privilege user,
//! and a user made with them.

#![allow(dead_code)]

/// The commands the README lists for a server.
pub const COMMANDS: &str = "+get +set +exists +del +unlink +incrby +mget +mset +multi +exec \
                        +persist +pexpire +pttl +scan +evalsha +eval +ping";
/// What the README adds for a Cluster.
pub const CLUSTER_COMMANDS: &str = "+cluster|slots +cluster|nodes +asking";

/// Makes the user `name` (password `pw`) on the server at `url` with the ACL `rules`.
pub fn add_user(url: &str, name: &str, rules: &str) {
    let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
    let mut command = redis::cmd("ACL");
    command
        .arg("SETUSER")
        .arg(name)
        .arg("reset")
        .arg("on")
        .arg(">pw");
    for rule in rules.split_whitespace() {
        command.arg(rule);
    }
    let () = command.query(&mut connection).unwrap();
}

/// `url` signed in as `name`.
pub fn as_user(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    format!("{scheme}://{name}:pw@{rest}")
}
