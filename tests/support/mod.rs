pub mod origin;
