namespace ZcProxy.Core.Diagnostics;

/// <summary>How body bytes actually moved; label values of zcproxy_body_bytes_total.</summary>
public enum BodyMechanism { Sendfile, Splice, DirectIo, Copy }

public enum BodyDirection { Response, Request }
