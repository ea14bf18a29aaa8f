//! The workflows of the suite, one module each.

mod discovery;
mod errors;
mod management;
mod pull;
mod push;

pub use discovery::discovery;
pub use errors::errors;
pub use management::management;
pub use pull::pull;
pub use push::push;
