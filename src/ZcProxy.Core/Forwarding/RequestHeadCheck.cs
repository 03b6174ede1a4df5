using System.Buffers;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// What an HTTP/1.x request head must satisfy beyond what Kestrel's parser enforces, so that the proxy never
/// forwards a request whose framing another parser could read differently (request smuggling), and never drops a
/// field silently. Each rule is one nginx and HAProxy apply too; a failing request is answered 400 and its connection
/// closed. Kestrel already rejects: bare CR, obs-fold, NUL, whitespace before the colon, bytes ≥ 0x80 in field names,
/// repeated Content-Length, a Transfer-Encoding whose last coding is not chunked, bad chunk framing; and, with
/// <see cref="ContentLengthEncoding"/>, a Content-Length that is not only digits.
/// </summary>
internal static class RequestHeadCheck
{
    /// <summary>Null when the head is acceptable, else why not (for the log).</summary>
    public static string? Problem(HttpRequest request)
    {
        if (FieldProblem(request.Headers) is { } fieldProblem) return fieldProblem;
        var transferEncoding = request.Headers.TransferEncoding;
        if (transferEncoding.Count > 0)
        {
            // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
            if (HttpProtocol.IsHttp10(request.Protocol)) return "Transfer-Encoding in an HTTP/1.0 request";
            // Only a single "chunked": Kestrel takes "identity, chunked" or "chunked, chunked" as chunked, a parser
            // upstream or beside us may not (nginx answers 501, HAProxy 400).
            if (!IsSingleChunked(transferEncoding)) return "Transfer-Encoding other than a single chunked";
        }
        return null;
    }

    /// <summary>
    /// Every field's name and values, read from a copy in a pooled array: enumerating the headers through the interface
    /// costs Kestrel's boxed enumerator, which it keeps for one enumeration per request, and the forwarder's head
    /// (<see cref="DefaultRequestHead"/>) enumerates them after this check.
    /// </summary>
    private static string? FieldProblem(IHeaderDictionary headers)
    {
        int count = headers.Count;
        var fields = ArrayPool<KeyValuePair<string, StringValues>>.Shared.Rent(count);
        try
        {
            headers.CopyTo(fields, 0);
            foreach (var (name, values) in fields.AsSpan(0, count))
            {
                if (!IsToken(name)) return "invalid character in a header field name";
                foreach (var value in values)
                    if (value is not null && HasControlCharacter(value)) return $"control character in the value of {name}";
            }
            return null;
        }
        finally
        {
            ArrayPool<KeyValuePair<string, StringValues>>.Shared.Return(fields, clearArray: true);
        }
    }

    private static bool IsSingleChunked(StringValues values)
    {
        int codings = 0;
        foreach (var value in values)
            foreach (var coding in (value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                if (++codings > 1 || !coding.Equals("chunked", StringComparison.OrdinalIgnoreCase)) return false;
        return codings == 1;
    }

    // tchar (RFC 9110 §5.6.2); Kestrel passes other ASCII bytes (0x01, '"', '(' ...) through in names.
    private static bool IsToken(string name)
    {
        if (name.Length == 0) return false;
        foreach (var c in name)
            if (c <= ' ' || c >= 0x7F || "\"(),/:;<=>?@[\\]{}".Contains(c)) return false;
        return true;
    }

    // RFC 9110 §5.5: field values are VCHAR, SP, HTAB and obs-text; Kestrel passes 0x01-0x08, 0x0B-0x1F and DEL through.
    private static bool HasControlCharacter(string value)
    {
        foreach (var c in value)
            if (c is < ' ' and not '\t' or (char)0x7F) return true;
        return false;
    }
}
