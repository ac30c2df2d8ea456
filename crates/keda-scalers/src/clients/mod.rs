//! Backend clients of the families not yet moved into their own folders.
