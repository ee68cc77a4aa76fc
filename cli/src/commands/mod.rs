pub(crate) mod admin;
pub(crate) mod bench;
pub(crate) mod jobs;
pub(crate) mod simulate;
pub(crate) mod submit;
pub(crate) mod up;
pub(crate) mod wait;
pub(crate) mod workers;
