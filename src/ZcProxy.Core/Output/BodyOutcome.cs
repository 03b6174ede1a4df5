namespace ZcProxy.Core.Output;

/// <summary>
/// How a body transfer ended, and whose fault a failure was. Every body the proxy sends (kernel moves, the copy
/// loop, cache hits, forwarded responses) ends in one of these; <see cref="BodyOutcomeReport"/> turns a failure
/// into a status, an error kind, a metric and a log line, in one place. A failure after the response head was sent
/// has already aborted the client connection: a truncated body never passes for a complete one.
/// </summary>
internal enum BodyOutcome
{
    Complete,
    /// <summary>The source ended before the promised length (upstream closed, file shrank).</summary>
    SourceEnded,
    /// <summary>The source failed (upstream reset, read error).</summary>
    SourceFailed,
    /// <summary>The source sent nothing for its idle timeout.</summary>
    SourceTimedOut,
    /// <summary>The source's framing broke the protocol (a malformed chunked body).</summary>
    SourceMalformed,
    /// <summary>The client failed: reset, closed, took nothing for the idle timeout, or the request was aborted.</summary>
    ClientFailed,
    /// <summary>The proxy's own transport failed, e.g. Kestrel stopped passing a hole's bytes straight through.</summary>
    TransportFailed,
    /// <summary>The receiving socket of a request body (the upstream of an upload) failed or took nothing for the idle timeout.</summary>
    SinkFailed,
}

/// <summary>The result of a body transfer: its outcome and, for a failure, a reason for the log.</summary>
internal readonly record struct BodyResult(BodyOutcome Outcome, string? Reason = null)
{
    public static BodyResult Complete => default;

    public bool IsComplete => Outcome == BodyOutcome.Complete;

    public static BodyResult Failed(BodyOutcome outcome, string reason) => new(outcome, reason);
}
