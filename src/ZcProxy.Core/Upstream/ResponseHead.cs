namespace ZcProxy.Core.Upstream;

/// <summary>How the body after a response head is delimited (RFC 9112 §6.3).</summary>
internal enum BodyFraming
{
    /// <summary>No body: HEAD request, 1xx, 204, 304.</summary>
    None,
    /// <summary>Exactly <see cref="ResponseHead.ContentLength"/> bytes.</summary>
    ContentLength,
    /// <summary>Transfer-Encoding: chunked.</summary>
    Chunked,
    /// <summary>Neither length nor chunked: the body ends when the upstream closes (never reusable).</summary>
    CloseDelimited,
}

/// <summary>A parsed upstream response head. Header names and values are kept as received (Latin-1).</summary>
internal sealed class ResponseHead
{
    public required int StatusCode { get; init; }
    public required string ReasonPhrase { get; init; }
    /// <summary>1 for HTTP/1.1, 0 for HTTP/1.0.</summary>
    public required int MinorVersion { get; init; }
    public required IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; }
    public required BodyFraming Framing { get; init; }
    /// <summary>The declared length when <see cref="Framing"/> is ContentLength, else -1.</summary>
    public required long ContentLength { get; init; }
    /// <summary>The upstream allows another request on this connection after the body (before framing is considered).</summary>
    public required bool KeepAlive { get; init; }
    /// <summary>Bytes the head occupied on the wire, terminating empty line included.</summary>
    public required int HeadLength { get; init; }

    public bool IsInterim => StatusCode is >= 100 and < 200;

    /// <summary>
    /// What the default response copy makes of these fields (<see cref="Forwarding.DefaultResponseHead"/>), set by it
    /// on first use: the same head comes back response after response on a keep-alive connection.
    /// </summary>
    internal Forwarding.DefaultResponseFields? DefaultFields { get; set; }
}
