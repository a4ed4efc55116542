using Pipeline.Processor;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddFeedProcessor();

var host = builder.Build();
host.Run();
