module github.com/rwadurian/mpc-client-sdk-go

go 1.19
