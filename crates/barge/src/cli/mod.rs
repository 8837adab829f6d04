//! The `barge` CLI: docker's verbs and flags, a client of the Docker Engine API over the
//! daemon's unix socket. See docs/cli.md for what is supported and where it differs from docker.

mod args;
mod autostart;
mod build;
pub mod client;
mod container;
pub mod endpoint;
pub mod error;
pub mod format;
mod image;
mod netvol;
pub mod opts;
pub mod out;
pub mod stream;
mod system;
mod term;

use clap::{CommandFactory, Parser};

use out::errln;

use args::{Cli, Cmd};
use client::Client;
use endpoint::{Endpoint, TlsFlags};
use error::{Error, Result};

/// Runs the CLI; returns the process exit code (Docker's: 125 engine error, else the command's).
pub fn main(args: Vec<std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    0
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    0
                }
                // As docker: a missing argument exits 1, a bad flag or flag value 125.
                ErrorKind::MissingRequiredArgument
                | ErrorKind::TooFewValues
                | ErrorKind::WrongNumberOfValues => {
                    let _ = e.print();
                    1
                }
                _ => {
                    let _ = e.print();
                    errln!("See 'barge --help'.");
                    125
                }
            };
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("barge: cannot start the async runtime: {e}");
            return 125;
        }
    };
    let res = rt.block_on(run(cli));
    rt.shutdown_background();
    match res {
        Ok(()) => 0,
        Err(e) => {
            let msg = e.to_string();
            if !msg.is_empty() {
                errln!("{msg}");
            }
            e.code()
        }
    }
}

fn client_for(cli: &Cli) -> Result<Client> {
    let flags = TlsFlags {
        tls: cli.tls,
        tlsverify: cli.tlsverify,
        cacert: cli.tlscacert.clone(),
        cert: cli.tlscert.clone(),
        key: cli.tlskey.clone(),
    };
    let (ep, default) = Endpoint::resolve(cli.host.as_deref(), &flags)?;
    Ok(Client::new(ep, default))
}

async fn run(cli: Cli) -> Result<()> {
    let Some(cmd) = cli.cmd.clone() else {
        let _ = Cli::command().print_help();
        return Ok(());
    };
    if let Cmd::Completion { shell } = &cmd {
        let mut c = Cli::command();
        // Generated into memory: clap_complete panics on a write error, and a reader that
        // stops early (`| head`) is not one.
        let mut buf = Vec::new();
        clap_complete::generate(*shell, &mut c, "barge", &mut buf);
        use std::io::Write;
        return match out::stdout().write_all(&buf) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        };
    }
    if let Cmd::Logout { server } = &cmd {
        return system::logout(server.as_deref(), cli.config.as_deref());
    }
    let c = client_for(&cli)?;
    let config = cli.config.clone();
    dispatch(&c, cmd, config.as_deref()).await
}

async fn dispatch(c: &Client, cmd: Cmd, config: Option<&str>) -> Result<()> {
    use args::{BuilderCmd, ContainerCmd, ImageCmd, SystemCmd};
    match cmd {
        Cmd::Run(a) => container::run(c, a).await,
        Cmd::Lifecycle(v) => lifecycle(c, v).await,
        Cmd::Rm(a) => container::rm(c, a).await,
        Cmd::Ps(a) => container::ps(c, a).await,
        Cmd::Io(v) => io(c, v).await,
        Cmd::Inspect(a) => container::inspect(c, a, None).await,
        Cmd::Manage(v) => manage(c, v).await,
        Cmd::Events(a) => system::events(c, a).await,
        Cmd::Images(a) => image::ls(c, a).await,
        Cmd::Pull(a) => image::pull(c, a, config).await,
        Cmd::Push(a) => image::push(c, a, config).await,
        Cmd::Tag(a) => image::tag(c, &a.source, &a.target).await,
        Cmd::Rmi(a) => image::rmi(c, a).await,
        Cmd::Save(a) => image::save(c, &a.images, a.output).await,
        Cmd::Load(a) => image::load(c, a).await,
        Cmd::Import(a) => image::import(c, a).await,
        Cmd::History(a) => image::history(c, a).await,
        Cmd::Login(a) => system::login(c, a, config).await,
        Cmd::Logout { .. } | Cmd::Completion { .. } => Ok(()),
        Cmd::Info(a) => system::info(c, a).await,
        Cmd::Version(a) => system::version(c, a).await,
        Cmd::Build(a) => build::build(c, a).await,
        Cmd::System(s) => match s {
            SystemCmd::Df(a) => system::df(c, a).await,
            SystemCmd::Prune(a) => system::prune(c, a).await,
            SystemCmd::Info(a) => system::info(c, a).await,
            SystemCmd::Events(a) => system::events(c, a).await,
        },
        Cmd::Container(cc) => match cc {
            ContainerCmd::Ls(a) => container::ps(c, a).await,
            ContainerCmd::Run(a) => container::run(c, a).await,
            ContainerCmd::Lifecycle(v) => lifecycle(c, v).await,
            ContainerCmd::Rm(a) => container::rm(c, a).await,
            ContainerCmd::Io(v) => io(c, v).await,
            ContainerCmd::Inspect(a) => container::inspect(c, a, Some("container")).await,
            ContainerCmd::Manage(v) => manage(c, v).await,
            ContainerCmd::Prune(a) => system::prune_one(c, "containers", a).await,
        },
        Cmd::Image(ic) => match ic {
            ImageCmd::Ls(a) => image::ls(c, a).await,
            ImageCmd::Pull(a) => image::pull(c, a, config).await,
            ImageCmd::Push(a) => image::push(c, a, config).await,
            ImageCmd::Tag(a) => image::tag(c, &a.source, &a.target).await,
            ImageCmd::Rm(a) => image::rmi(c, a).await,
            ImageCmd::Save(a) => image::save(c, &a.images, a.output).await,
            ImageCmd::Load(a) => image::load(c, a).await,
            ImageCmd::Import(a) => image::import(c, a).await,
            ImageCmd::History(a) => image::history(c, a).await,
            ImageCmd::Inspect(a) => container::inspect(c, a, Some("image")).await,
            ImageCmd::Prune(a) => system::prune_one(c, "images", a).await,
            ImageCmd::Build(a) => build::build(c, a).await,
        },
        Cmd::Network(n) => netvol::network(c, n).await,
        Cmd::Volume(v) => netvol::volume(c, v).await,
        Cmd::Builder(b) => match b {
            BuilderCmd::Prune(a) => system::prune_one(c, "build", a).await,
            BuilderCmd::Build(a) => build::build(c, *a).await,
        },
    }
}

/// Prints a daemon error per item (docker's style for multi-target verbs) and returns the
/// aggregate result: Ok when all succeeded, else exit 1 (as docker).
pub(crate) fn report_each(errors: Vec<Error>) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    for e in &errors {
        errln!("{e}");
    }
    Err(Error::Exit(1))
}

/// The shared container verbs ([`args::LifecycleCmd`]), top-level or under `container`.
async fn lifecycle(c: &Client, v: args::LifecycleCmd) -> Result<()> {
    use args::LifecycleCmd as V;
    match v {
        V::Create(a) => container::create_cmd(c, a).await,
        V::Start(a) => container::start(c, a).await,
        V::Stop(a) => container::stop(c, a, false).await,
        V::Restart(a) => container::stop(c, a, true).await,
        V::Kill(a) => container::kill(c, a).await,
    }
}

/// The shared container verbs ([`args::IoCmd`]), top-level or under `container`.
async fn io(c: &Client, v: args::IoCmd) -> Result<()> {
    use args::IoCmd as V;
    match v {
        V::Logs(a) => container::logs(c, a).await,
        V::Exec(a) => container::exec(c, a).await,
        V::Attach(a) => container::attach(c, a).await,
        V::Wait(a) => container::wait(c, a).await,
    }
}

/// The shared container verbs ([`args::ManageCmd`]), top-level or under `container`.
async fn manage(c: &Client, v: args::ManageCmd) -> Result<()> {
    use args::ManageCmd as V;
    match v {
        V::Top(a) => container::top(c, a).await,
        V::Stats(a) => container::stats(c, a).await,
        V::Pause(a) => container::simple(c, a, "pause").await,
        V::Unpause(a) => container::simple(c, a, "unpause").await,
        V::Rename {
            container,
            new_name,
        } => container::rename(c, &container, &new_name).await,
        V::Update(a) => container::update(c, a).await,
        V::Port { container, port } => container::port(c, &container, port.as_deref()).await,
        V::Cp(a) => container::cp(c, a).await,
        V::Diff { container } => container::diff(c, &container).await,
        V::Export { output, container } => container::export(c, &container, output).await,
        V::Commit(a) => container::commit(c, a).await,
    }
}
