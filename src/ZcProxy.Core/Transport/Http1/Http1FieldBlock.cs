using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>
/// Response fields set as a whole (<see cref="Http1ResponseHeaders.TryPassThrough"/>) and written as one piece: the
/// fields an upstream head passes on to the client, worked out once per head by the forwarder. Immutable; its wire form is
/// encoded on first use and kept (a keep-alive connection hands out the same head response after response).
/// </summary>
internal sealed class Http1FieldBlock
{
    /// <param name="fields">Distinct names (ignoring case), each with at least one value, in the order they are written.</param>
    public Http1FieldBlock(KeyValuePair<string, StringValues>[] fields)
    {
        Fields = fields;
        int length = IndexOf(Microsoft.Net.Http.Headers.HeaderNames.ContentLength);
        // Read as HeaderDictionary reads it (one value, digits after trimming), so both forms answer alike.
        if (length >= 0) ContentLength = new HeaderDictionary { [fields[length].Key] = fields[length].Value }.ContentLength;
        HasDate = IndexOf(Microsoft.Net.Http.Headers.HeaderNames.Date) >= 0;
        _connection = Scan(Microsoft.Net.Http.Headers.HeaderNames.Connection);
        _transferEncoding = Scan(Microsoft.Net.Http.Headers.HeaderNames.TransferEncoding);
    }

    private readonly int _connection, _transferEncoding;

    public KeyValuePair<string, StringValues>[] Fields { get; }

    public long? ContentLength { get; }

    public bool HasDate { get; }

    /// <summary>The fields as written ("Name: value\r\n" each), set by <see cref="Http1ResponseHead"/> on first use.</summary>
    internal byte[]? Wire { get; set; }

    public int IndexOf(string name)
    {
        // The framing decision (Http1ResponseHead.Decide) asks every response for these two, through IHeaderDictionary's
        // properties (HeaderNames' strings): answered from the indexes found once per block, not by a scan of the fields
        // with a case-insensitive comparison each (the lookups were 0.3-0.6 % of the loop samples at 1 KiB, -c64; 0.2 % now).
        if (ReferenceEquals(name, Microsoft.Net.Http.Headers.HeaderNames.Connection)) return _connection;
        if (ReferenceEquals(name, Microsoft.Net.Http.Headers.HeaderNames.TransferEncoding)) return _transferEncoding;
        return Scan(name);
    }

    private int Scan(string name)
    {
        var fields = Fields;
        for (int i = 0; i < fields.Length; i++)
            if (string.Equals(fields[i].Key, name, StringComparison.OrdinalIgnoreCase)) return i;
        return -1;
    }
}
