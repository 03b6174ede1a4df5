namespace ZcProxy.Core.Diagnostics;

/// <summary>How body bytes actually moved; label values of zcproxy_body_bytes_total.</summary>
internal enum BodyMechanism { Sendfile, Splice, DirectIo, Copy }

internal enum BodyDirection { Response, Request }
