pub struct GcpPlaceholder;
