using System.Buffers;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using ZcProxy.Core.Forwarding;
using ZcProxy.Core.Transport.Http1;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// A proxied response whose fields are the upstream's (default transforms) is passed through as the head's block on the
/// own HTTP/1.1 layer, not copied into a dictionary: it must read and write exactly as the copied fields do, and become
/// an ordinary dictionary at the first change.
/// </summary>
public partial class Http1ResponseHeadersTests
{
    public static TheoryData<int, string> Heads() => new()
    {
        { 200, "Server: nginx|Date: Tue, 01 Dec 2026 10:00:00 GMT|Content-Type: text/html|Content-Length: 1024|Last-Modified: x|Connection: keep-alive|ETag: \"a\"|Accept-Ranges: bytes" },
        { 200, "Content-Disposition: attachment|Set-Cookie: a=1|Set-Cookie: b=2|Keep-Alive: timeout=5|Transfer-Encoding: chunked" },
        { 200, "Host: upstream|Accept: x|x-frame-options: DENY|content-type: a/b|X-Lower: y|Alt-Svc: h2=\":443\"|Strict-Transport-Security: max-age=1" },
        { 304, "Content-Length: 10|ETag: \"b\"" },
        { 200, "X-Utf8: caf\u00C3\u00A9|X-Empty: |Vary: Accept|vary: Cookie|Content-Length:  7 " },
        { 200, "" },
    };

    [Theory]
    [MemberData(nameof(Heads))]
    public void PassedThrough_ReadsAndWritesAsTheCopiedFields(int status, string fields)
    {
        var head = Head(status, fields);
        var (passed, passedResponse) = Response();
        var copied = new DefaultHttpContext().Response;
        DefaultResponseHead.Copy(passedResponse, head);
        DefaultResponseHead.Copy(copied, head);

        Assert.NotNull(passed.PassedThrough); // not copied
        Assert.Equal(Describe(copied.Headers), Describe(passed));
        Assert.Equal(copied.Headers.Count, passed.Count);
        Assert.Equal(copied.Headers.ContentLength, passed.ContentLength);
        foreach (var name in new[] { "Content-Length", "content-type", "ETAG", "Connection", "Vary", "X-Missing" })
        {
            Assert.Equal(copied.Headers[name], passed[name]);
            Assert.Equal(copied.Headers.ContainsKey(name), passed.ContainsKey(name));
            Assert.Equal(copied.Headers.TryGetValue(name, out var a), passed.TryGetValue(name, out var b));
            Assert.Equal(a, b);
        }
        Assert.Equal(Written(status, copied.Headers), Written(status, passed));
        Assert.Equal(Written(status, copied.Headers), Written(status, passed)); // the block's bytes, kept from the first write
        Assert.NotNull(passed.PassedThrough);
    }

    [Theory]
    [MemberData(nameof(Heads))]
    public void AChange_MakesItTheDictionaryTheCopyWouldHaveMade(int status, string fields)
    {
        var head = Head(status, fields);
        var (passed, passedResponse) = Response();
        var copied = new DefaultHttpContext().Response;
        DefaultResponseHead.Copy(passedResponse, head);
        DefaultResponseHead.Copy(copied, head);
        foreach (var headers in new[] { copied.Headers, passed })
        {
            headers["X-Cache-Status"] = "MISS";
            headers.Remove("etag");
            headers.Connection = "close";
        }

        Assert.Null(passed.PassedThrough);
        Assert.Equal(Describe(copied.Headers), Describe(passed));
        Assert.Equal(Written(status, copied.Headers), Written(status, passed));
    }

    [Fact]
    public void FieldsTheCopyRemoves_OrAResponseWithFieldsAlready_AreCopiedAsBefore()
    {
        // The upstream's Connection names a field: removed after the copy, so no block.
        var hop = Head(200, "X-Hop: 1|Connection: X-Hop|X-Stays: 2");
        var (headers, response) = Response();
        DefaultResponseHead.Copy(response, hop);
        Assert.Null(headers.PassedThrough);
        Assert.Equal("X-Stays: 2", Describe(headers));

        // A field the proxy set before the copy (HSTS of its own): the copy joins the upstream's to the response's fields.
        var plain = Head(200, "Content-Type: a/b|Strict-Transport-Security: max-age=1");
        (headers, response) = Response();
        ((IHeaderDictionary)headers).StrictTransportSecurity = "max-age=99";
        DefaultResponseHead.Copy(response, plain);
        Assert.Null(headers.PassedThrough);
        Assert.Equal("Strict-Transport-Security: max-age=99\nContent-Type: a/b", Describe(headers));

        // Cleared (a 500 after a failure, the next request): no block left.
        (headers, response) = Response();
        DefaultResponseHead.Copy(response, plain);
        headers.Clear();
        Assert.Null(headers.PassedThrough);
        Assert.Empty(headers);
        Assert.Equal("", Describe(headers));
    }

    private static (Http1ResponseHeaders Headers, HttpResponse Response) Response()
    {
        var context = new DefaultHttpContext();
        var headers = new Http1ResponseHeaders();
        context.Features.Get<IHttpResponseFeature>()!.Headers = headers;
        return (headers, context.Response);
    }

    private static ResponseHead Head(int status, string fields) => new()
    {
        StatusCode = status, ReasonPhrase = "OK", MinorVersion = 1, Framing = BodyFraming.None, ContentLength = -1, KeepAlive = true, HeadLength = 0,
        Headers = [.. fields.Split('|', StringSplitOptions.RemoveEmptyEntries).Select(line =>
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            return new KeyValuePair<string, string>(line[..colon], line[(colon + 1)..].Trim());
        })],
    };

    private static string Describe(IHeaderDictionary headers) => string.Join("\n", headers.Select(h => $"{h.Key}: {string.Join(" | ", h.Value.ToArray())}"));

    /// <summary>The head as written, its Date line (the clock's, when the fields have none) masked.</summary>
    private static string Written(int status, IHeaderDictionary headers)
    {
        var output = new ArrayBufferWriter<byte>();
        Http1ResponseHead.Write(status, null, headers, output);
        return GeneratedDate().Replace(Encoding.Latin1.GetString(output.WrittenSpan), "Date: (now)\r\n");
    }

    [GeneratedRegex(@"^Date: [^\r]*GMT\r\n(?!.*\r\nDate:)", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex GeneratedDate();
}
