using System.Text;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Transport.Http1;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// The own HTTP/1.1 layer's parser accepts only the plain case; every ambiguous or malformed head (the request-smuggling
/// shapes among them) must be handed to Kestrel, the one place that answers them.
/// </summary>
public class Http1HeadParserTests
{
    private static readonly Http1HeadLimits Limits = new(8192, 32768, 100);

    private static (Http1HeadStatus Status, Http1RequestHead Head, HeaderDictionary Headers) Parse(string head, Http1HeadLimits? limits = null)
    {
        var headers = new HeaderDictionary();
        var status = Http1HeadParser.Parse(Encoding.Latin1.GetBytes(head), limits ?? Limits, headers, out var parsed);
        return (status, parsed, headers);
    }

    [Fact]
    public void APlainGet_IsParsed()
    {
        var (status, head, headers) = Parse("GET /a/b?x=1&y=%2 HTTP/1.1\r\nHost: example.com:8080\r\nX-A: \t v a l \t\r\nx-a: 2\r\n\r\nnext");
        Assert.Equal(Http1HeadStatus.HandOver, status); // '%' in the query: Kestrel's
        (status, head, headers) = Parse("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\nX-A: \t v a l \t\r\nx-a: 2\r\n\r\nnext");
        Assert.Equal(Http1HeadStatus.Complete, status);
        Assert.Equal(("GET", "/a/b", "?x=1&y=2", "/a/b?x=1&y=2", false, -1L), (head.Method, head.Path, head.QueryString, head.RawTarget, head.Http10, head.ContentLength));
        Assert.Equal("example.com:8080", headers["Host"].ToString());
        Assert.Equal("v a l,2", string.Join(",", headers["X-A"].ToArray()));
        Assert.Equal("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\nX-A: \t v a l \t\r\nx-a: 2\r\n\r\n".Length, head.Length);
    }

    [Fact]
    public void ContentLength_Http10_AndConnectionOptions_AreRead()
    {
        var (status, head, _) = Parse("POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\nConnection: keep-alive, close\r\n\r\nhello");
        Assert.Equal(Http1HeadStatus.Complete, status);
        Assert.Equal((5L, true, true), (head.ContentLength, head.ConnectionClose, head.ConnectionKeepAlive));
        (status, head, _) = Parse("GET / HTTP/1.0\r\n\r\n");
        Assert.Equal((Http1HeadStatus.Complete, true), (status, head.Http10));
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHo")]
    [InlineData("GET / HTT")]
    [InlineData("GET / HTTP/1.1\r")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\n\r")]
    public void APrefixOfAPlainHead_IsIncomplete(string head) => Assert.Equal(Http1HeadStatus.Incomplete, Parse(head).Status);

    [Theory]
    // Framing the subset does not take: Kestrel's.
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -0\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 5\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")]
    [InlineData("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")]
    // Request line shapes.
    [InlineData("GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n")]
    [InlineData("CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET /a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET /a/../b HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET /a/./b HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET /a#f HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET /\u00e9 HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET  / HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET / HTTP/1.1 \r\nHost: x\r\n\r\n")]
    [InlineData("GET / HTTP/1.2\r\nHost: x\r\n\r\n")]
    [InlineData("GET / http/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("G(T / HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n")]
    // Line endings, folding, controls, non-ASCII.
    [InlineData("GET / HTTP/1.1\nHost: x\n\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\n Host: x\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\u000Bb\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\u007Fb\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX-A: caf\u00e9\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX-A\u0001b: 1\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\n: 1\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX-A 1\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A: a\r\n Transfer-Encoding: chunked\r\n\r\n")]
    // Host: RFC 9112 §3.2.
    [InlineData("GET / HTTP/1.1\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")]
    [InlineData("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost:\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a b\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a:\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a_b\r\n\r\n")]
    // Bytes that can never start a valid line: no need to wait for more.
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb")]
    [InlineData("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")]
    public void AnythingButThePlainCase_IsHandedToKestrel(string head) => Assert.Equal(Http1HeadStatus.HandOver, Parse(head).Status);

    [Fact]
    public void Limits_AreKestrels_AndReachingThemHandsOver()
    {
        var small = new Http1HeadLimits(MaxRequestLine: 32, MaxHeadersTotal: 40, MaxHeaderCount: 2);
        Assert.Equal(Http1HeadStatus.Complete, Parse("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", small).Status);
        Assert.Equal(Http1HeadStatus.HandOver, Parse("GET /" + new string('a', 40) + " HTTP/1.1\r\nHost: x\r\n\r\n", small).Status);
        Assert.Equal(Http1HeadStatus.HandOver, Parse("GET /" + new string('a', 40), small).Status); // a line already too long
        Assert.Equal(Http1HeadStatus.HandOver, Parse("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n", small).Status); // 3 fields
        Assert.Equal(Http1HeadStatus.HandOver, Parse("GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + new string('v', 40) + "\r\n\r\n", small).Status);
        Assert.Equal(Http1HeadStatus.HandOver, Parse("GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + new string('v', 40), small).Status);
    }
}
