fn main() {
    ci_run::main()
}
