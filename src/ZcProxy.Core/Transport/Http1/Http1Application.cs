using Microsoft.AspNetCore.Hosting.Server;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>The host's application without its context type: rents a request object and runs one request through it.</summary>
internal abstract class Http1Application
{
    private long _served;
    private int _inUse;

    /// <summary>Requests this layer served (tests, diagnostics).</summary>
    public long Served => Volatile.Read(ref _served);

    /// <summary>Request objects rented and not returned: 0 when every connection is idle.</summary>
    public int InUse => Volatile.Read(ref _inUse);

    protected void Rented() => Interlocked.Increment(ref _inUse);

    protected void Returned(bool served)
    {
        Interlocked.Decrement(ref _inUse);
        if (served) Interlocked.Increment(ref _served);
    }

    /// <summary>A request object of this thread's pool (an idle connection holds none).</summary>
    public abstract Http1Exchange Rent();

    /// <summary>Back to this thread's pool, reset.</summary>
    public abstract void Return(Http1Exchange exchange);

    /// <summary>Runs the request as Kestrel does: CreateContext, ProcessRequestAsync, the response's end, OnCompleted, DisposeContext.</summary>
    public abstract ValueTask RunAsync(Http1Exchange exchange);
}

internal sealed class Http1Application<TContext>(IHttpApplication<TContext> application) : Http1Application where TContext : notnull
{
    /// <summary>Spare request objects of this thread (a loop's): bounded; each keeps its HttpContext for the next request.</summary>
    [ThreadStatic] private static Stack<Http1Exchange<TContext>>? t_spares;
    private const int MaxSpares = 256;

    public override Http1Exchange Rent()
    {
        Rented();
        return t_spares is { Count: > 0 } spares ? spares.Pop() : new Http1Exchange<TContext>();
    }

    public override void Return(Http1Exchange exchange)
    {
        Returned(served: exchange.Owner is not null);
        exchange.Reset();
        var spares = t_spares ??= new Stack<Http1Exchange<TContext>>();
        if (spares.Count < MaxSpares) spares.Push((Http1Exchange<TContext>)exchange);
    }

    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(Loops.FramePoolBuilder))]
    public override async ValueTask RunAsync(Http1Exchange exchange)
    {
        var context = application.CreateContext(exchange);
        Exception? failure = null;
        try
        {
            await application.ProcessRequestAsync(context);
        }
        catch (Exception e)
        {
            failure = e;
        }
        await exchange.EndAsync(failure);
        application.DisposeContext(context, failure);
    }
}
