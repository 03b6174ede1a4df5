namespace ZcProxy.Core.Upstream;

/// <summary>
/// The last final head's bytes as received. An upstream answering the same resource sends the same head byte for byte
/// until its Date changes (once a second): such a head parses to the same <see cref="ResponseHead"/> (heads are
/// immutable), so it is found by one comparison of the bytes instead of a parse (the parser was ~2 % of a proxied
/// 1 KiB request's CPU). The bytes live in a buffer of the connection's own, reused from head to head.
/// </summary>
internal sealed partial class UpstreamConnection
{
    /// <summary>Longer heads are parsed each time rather than kept (a connection holds at most this much for it).</summary>
    internal const int MaxRememberedHeadBytes = 2048;

    private byte[]? _headBytes;
    private int _headBytesLength;
    private ResponseHead? _headOfBytes;
    private bool _headOfBytesWasHeadRequest;
    private ResponseHeadLimits? _headOfBytesLimits;

    /// <summary>The head at the start of <paramref name="received"/>: the remembered one when its bytes come again, else parsed.</summary>
    private ResponseHeadParseResult ParseHead(ReadOnlySpan<byte> received, bool requestWasHead, ResponseHeadLimits limits)
    {
        // The parse of a head depends on its bytes, the request's method (HEAD: no body) and the limits only; the head
        // ends at its first empty line, so bytes that start with a whole remembered head hold exactly that head.
        if (_headOfBytes is { } same && _headOfBytesWasHeadRequest == requestWasHead && ReferenceEquals(_headOfBytesLimits, limits)
            && received.StartsWith(_headBytes.AsSpan(0, _headBytesLength)))
            return ResponseHeadParseResult.Complete(same);
        return ResponseHeadParser.Parse(received, requestWasHead, limits, LastHead);
    }

    /// <summary>Keeps the bytes of the final head just parsed (<paramref name="bytes"/>, exactly its length) for the next read.</summary>
    private void RememberHead(ReadOnlySpan<byte> bytes, ResponseHead head, bool requestWasHead, ResponseHeadLimits limits)
    {
        // The same object again: from these bytes, or from others that parse the same (optional whitespace); either matches.
        if (ReferenceEquals(head, _headOfBytes) && _headOfBytesWasHeadRequest == requestWasHead && ReferenceEquals(_headOfBytesLimits, limits)) return;
        _headOfBytes = null;
        if (bytes.Length > MaxRememberedHeadBytes || head.StatusCode == 101) return; // an upgrade never reads another head
        if (_headBytes is null || _headBytes.Length < bytes.Length) _headBytes = new byte[Math.Max(bytes.Length, 512)];
        bytes.CopyTo(_headBytes);
        _headBytesLength = bytes.Length;
        _headOfBytes = head;
        _headOfBytesWasHeadRequest = requestWasHead;
        _headOfBytesLimits = limits;
    }
}
