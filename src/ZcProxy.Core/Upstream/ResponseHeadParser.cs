using System.Buffers;
using System.Text;

namespace ZcProxy.Core.Upstream;

/// <summary>
/// Strict RFC 9112 response-head parser. It is fed everything received so far and answers Incomplete,
/// Complete (with the head's exact length, so the caller consumes no body byte) or Invalid as soon as a
/// complete line is wrong: garbage is rejected without waiting for a terminator that may never come.
/// Rejected: bare LF or CR, obs-fold, whitespace before the colon, control characters, differing or
/// malformed Content-Length, Content-Length with Transfer-Encoding, any transfer coding other than a
/// single "chunked", Transfer-Encoding in HTTP/1.0, heads over the size or header-count limit.
/// Strings are reused from <c>previous</c> (the last head read on the same connection) where the bytes are the same:
/// an upstream sends the same fields response after response, and their strings were most of what a small proxied
/// request allocated (Kestrel reuses request-header strings per connection the same way). A head whose fields are all
/// <c>previous</c>'s shares its field array, and one that is the same in everything is <c>previous</c> itself (heads are
/// immutable): a keep-alive connection answering the same resource allocates no head at all until its Date changes.
/// </summary>
internal static class ResponseHeadParser
{
    private static readonly Encoding Latin1 = Encoding.Latin1;

    /// <summary>The fields of the head being parsed, copied into an exact-size array once complete (Parse is not reentrant).</summary>
    [ThreadStatic]
    private static List<KeyValuePair<string, string>>? t_fields;

    /// <param name="previous">A head read before on the same connection, whose strings are reused where the bytes match.</param>
    public static ResponseHeadParseResult Parse(ReadOnlySpan<byte> received, bool requestWasHead, ResponseHeadLimits? limits = null, ResponseHead? previous = null)
    {
        limits ??= ResponseHeadLimits.Default;
        int statusCode = 0, minor = 0;
        string reason = "";
        var headers = t_fields ??= new List<KeyValuePair<string, string>>(16);
        headers.Clear();
        int position = 0;
        bool first = true;

        while (true)
        {
            int lf = received[position..].IndexOf((byte)'\n');
            if (lf < 0)
            {
                if (received.Length > limits.MaxHeadBytes) return ResponseHeadParseResult.Invalid("response head exceeds the size limit");
                if (first && !CouldBeStatusLinePrefix(received)) return ResponseHeadParseResult.Invalid("not an HTTP/1.x status line");
                return ResponseHeadParseResult.Incomplete;
            }
            int lineEnd = position + lf; // index of LF
            if (lineEnd + 1 > limits.MaxHeadBytes) return ResponseHeadParseResult.Invalid("response head exceeds the size limit");
            if (lf == 0 || received[lineEnd - 1] != (byte)'\r') return ResponseHeadParseResult.Invalid("bare LF line ending");
            var line = received[position..(lineEnd - 1)];
            position = lineEnd + 1;

            if (first)
            {
                var error = ParseStatusLine(line, previous?.ReasonPhrase, out minor, out statusCode, out reason);
                if (error is not null) return ResponseHeadParseResult.Invalid(error);
                first = false;
                continue;
            }
            if (line.IsEmpty) break;
            if (line[0] is (byte)' ' or (byte)'\t') return ResponseHeadParseResult.Invalid("obsolete line folding");
            if (headers.Count == limits.MaxHeaderCount) return ResponseHeadParseResult.Invalid("too many header fields");
            var previousFields = previous?.Headers;
            var previousField = previousFields is not null && headers.Count < previousFields.Count ? previousFields[headers.Count] : default;
            var fieldError = ParseField(line, previousField, out var name, out var value);
            if (fieldError is not null) return ResponseHeadParseResult.Invalid(fieldError);
            headers.Add(new(name, value));
        }

        return Frame(statusCode, reason, minor, headers, position, requestWasHead, previous);
    }

    private static ResponseHeadParseResult Frame(int status, string reason, int minor, List<KeyValuePair<string, string>> headers, int headLength,
        bool requestWasHead, ResponseHead? previous)
    {
        long contentLength = -1;
        bool hasTransferEncoding = false, chunked = false, close = false, keepAliveToken = false;
        foreach (var (name, value) in headers)
        {
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                // A repeated Content-Length (or a list) is tolerated only when every value is the same (RFC 9110 §8.6).
                foreach (var range in value.AsSpan().Split(','))
                {
                    if (!TryParseLength(value.AsSpan(range).Trim(" \t"), out var length)) return ResponseHeadParseResult.Invalid("invalid Content-Length");
                    if (contentLength >= 0 && contentLength != length) return ResponseHeadParseResult.Invalid("conflicting Content-Length values");
                    contentLength = length;
                }
            }
            else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
            {
                foreach (var range in value.AsSpan().Split(','))
                {
                    var coding = value.AsSpan(range).Trim(" \t");
                    if (coding.Length == 0) continue;
                    // Only a lone "chunked" is accepted: the proxy removes Transfer-Encoding (hop-by-hop), so any
                    // other coding would reach the client undeclared.
                    if (!coding.Equals("chunked", StringComparison.OrdinalIgnoreCase) || chunked)
                        return ResponseHeadParseResult.Invalid($"unsupported transfer coding '{coding}'");
                    chunked = true;
                }
                hasTransferEncoding = true;
            }
            else if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
            {
                foreach (var range in value.AsSpan().Split(','))
                {
                    var token = value.AsSpan(range).Trim(" \t");
                    if (token.Equals("close", StringComparison.OrdinalIgnoreCase)) close = true;
                    else if (token.Equals("keep-alive", StringComparison.OrdinalIgnoreCase)) keepAliveToken = true;
                }
            }
        }

        if (hasTransferEncoding && !chunked) return ResponseHeadParseResult.Invalid("empty Transfer-Encoding");
        if (hasTransferEncoding && minor == 0) return ResponseHeadParseResult.Invalid("Transfer-Encoding in an HTTP/1.0 response");
        if (hasTransferEncoding && contentLength >= 0) return ResponseHeadParseResult.Invalid("both Content-Length and Transfer-Encoding");

        BodyFraming framing;
        if (requestWasHead || status is < 200 or 204 or 304) framing = BodyFraming.None;
        else if (chunked) framing = BodyFraming.Chunked;
        else if (contentLength >= 0) framing = BodyFraming.ContentLength;
        else framing = BodyFraming.CloseDelimited;

        bool keepAlive = !close && (minor == 1 || keepAliveToken) && framing != BodyFraming.CloseDelimited;
        if (framing != BodyFraming.ContentLength) contentLength = -1;
        bool sameFields = previous is not null && SameStrings(previous.Headers, headers);
        if (sameFields && previous!.StatusCode == status && ReferenceEquals(previous.ReasonPhrase, reason) && previous.MinorVersion == minor
            && previous.Framing == framing && previous.ContentLength == contentLength && previous.KeepAlive == keepAlive && previous.HeadLength == headLength)
            return ResponseHeadParseResult.Complete(previous);
        return ResponseHeadParseResult.Complete(new ResponseHead
        {
            StatusCode = status,
            ReasonPhrase = reason,
            MinorVersion = minor,
            Headers = sameFields ? previous!.Headers : headers.ToArray(),
            Framing = framing,
            ContentLength = contentLength,
            KeepAlive = keepAlive,
            HeadLength = headLength,
        });
    }

    /// <summary>The same field strings (not just equal ones: <see cref="Reuse"/> made them the same where the bytes were).</summary>
    private static bool SameStrings(IReadOnlyList<KeyValuePair<string, string>> previous, List<KeyValuePair<string, string>> fields)
    {
        if (previous.Count != fields.Count) return false;
        for (int i = 0; i < fields.Count; i++)
            if (!ReferenceEquals(previous[i].Key, fields[i].Key) || !ReferenceEquals(previous[i].Value, fields[i].Value)) return false;
        return true;
    }

    private static ReadOnlySpan<byte> HttpSlash => "HTTP/1."u8;

    private static bool CouldBeStatusLinePrefix(ReadOnlySpan<byte> received)
    {
        int n = Math.Min(received.Length, HttpSlash.Length);
        return received[..n].SequenceEqual(HttpSlash[..n]);
    }

    /// <summary>status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ]</summary>
    private static string? ParseStatusLine(ReadOnlySpan<byte> line, string? previousReason, out int minor, out int status, out string reason)
    {
        minor = status = 0;
        reason = "";
        // "HTTP/1.x SP ddd" is 12 bytes; the SP after the code is required, the reason may be empty.
        if (line.Length < 13 || !line.StartsWith(HttpSlash)) return "not an HTTP/1.x status line";
        if (line[7] is not ((byte)'0' or (byte)'1')) return "unsupported HTTP version";
        minor = line[7] - '0';
        if (line[8] != (byte)' ' || line[12] != (byte)' ') return "malformed status line";
        for (int i = 9; i < 12; i++)
        {
            if (line[i] is < (byte)'0' or > (byte)'9') return "malformed status code";
            status = status * 10 + (line[i] - '0');
        }
        if (status is < 100 or > 599) return "status code out of range";
        var reasonBytes = line[13..];
        if (reasonBytes.ContainsAny(NotFieldValueBytes)) return "invalid character in reason phrase";
        reason = Reuse(reasonBytes, previousReason);
        return null;
    }

    /// <summary>field-line = field-name ":" OWS field-value OWS</summary>
    /// <param name="previous">The field at the same position in the previous head (default: none).</param>
    private static string? ParseField(ReadOnlySpan<byte> line, KeyValuePair<string, string> previous, out string name, out string value)
    {
        name = value = "";
        int colon = line.IndexOf((byte)':');
        if (colon <= 0) return "header line without a field name";
        var nameBytes = line[..colon];
        if (nameBytes.ContainsAnyExcept(TokenBytes)) return "invalid character in header field name"; // also rejects "Name : value"
        var valueBytes = line[(colon + 1)..];
        if (valueBytes.ContainsAny(NotFieldValueBytes)) return "invalid character in header field value";
        name = Reuse(nameBytes, previous.Key);
        value = Reuse(valueBytes.Trim(" \t"u8), previous.Value);
        return null;
    }

    /// <summary>The <paramref name="previous"/> string when it holds exactly these (ASCII) bytes, else a new string.</summary>
    private static string Reuse(ReadOnlySpan<byte> bytes, string? previous)
        => previous is not null && previous.Length == bytes.Length && System.Text.Ascii.Equals(bytes, previous) ? previous : Latin1.GetString(bytes);

    private static bool TryParseLength(ReadOnlySpan<char> text, out long length)
    {
        length = 0;
        if (text.Length is 0 or > 18) return false; // 18 digits cannot overflow a long
        foreach (var c in text)
        {
            if (c is < '0' or > '9') return false;
            length = length * 10 + (c - '0');
        }
        return true;
    }

    // Checked a vector at a time (SearchValues): every byte of every field passes these checks.
    // tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
    private static readonly SearchValues<byte> TokenBytes =
        SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    // A field value or reason phrase is VCHAR, SP, HTAB, obs-text: never CR, LF, NUL, other controls or DEL.
    private static readonly SearchValues<byte> NotFieldValueBytes = SearchValues.Create(NotFieldValue());

    private static byte[] NotFieldValue()
    {
        var bytes = new List<byte>();
        for (int b = 0; b < 0x20; b++)
            if (b != '\t') bytes.Add((byte)b);
        bytes.Add(0x7F);
        return [.. bytes];
    }
}
